//! Check mode: the bug finder, a layer over the core that the default build never calls.
//!
//! - `fail`: fault injection (`LARDER_FAIL`): which allocations return null.

pub mod fail;
