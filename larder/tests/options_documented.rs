//! Every variable of the options table is documented where users look: the README and larder.h.

#[test]
fn every_option_is_in_the_readme_and_in_larder_h() {
    let readme = include_str!("../../README.md");
    let header = include_str!("../../include/larder.h");
    for variable in larder::options::VARIABLES {
        assert!(
            readme.contains(variable.name),
            "README.md lacks {}",
            variable.name
        );
        assert!(
            header.contains(variable.name),
            "larder.h lacks {}",
            variable.name
        );
    }
}
