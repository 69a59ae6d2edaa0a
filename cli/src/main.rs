//! `ferrochat-cli`: see `cli/README.md`. Everything lives in the library.

fn main() {
    std::process::exit(ferrochat_cli::run());
}
