//! Sets larder up from a constructor, before the program can register `fork` handlers of its
//! own: larder's, registered first, then take its locks after every prepare handler of the
//! program's (which may allocate) and release them before its parent and child handlers run.
//! Registered at the first allocation instead, they came after those of a program that called
//! `pthread_atfork` before its first `malloc`, and the program's prepare handler deadlocked in
//! `realloc` on a lock larder's had taken (issue 13). Handlers registered even earlier (a
//! constructor that runs before this one) still work: the forking thread may enter locks held
//! for `fork` (see `larder::sync`).

/// Run by the dynamic linker (or, linked statically, by libc's start-up code) before `main`
/// and before the constructors of the objects that depend on this library.
#[used]
#[link_section = ".init_array"]
static INIT_EARLY: extern "C" fn() = init_early;

extern "C" fn init_early() {
    // The options (the report file, the error action...) are read as the process starts,
    // before the program can change its environment.
    larder_core::options::get();
    // A failure here (no memory) is answered again by the first allocation.
    let _ = larder_core::raw::init();
    // The `larder run --plot` sampler, only when LARDER_TIMELINE_MS asks for it.
    crate::timeline::start();
}
