//! dproxy: a DNS caching proxy for routers and gateways.
fn main() {
    std::process::exit(dproxy::cli::main());
}
