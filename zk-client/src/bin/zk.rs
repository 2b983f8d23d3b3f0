//! `zk`: a ZooKeeper command-line tool with zkCli's commands, flags and output.
//! See `zk --help`, and [`zk_client::cli`].

fn main() {
    std::process::exit(zk_client::cli::main());
}
