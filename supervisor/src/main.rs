//! `palisade`: the Palisade supervisor daemon (`palisade run`) and its
//! operator CLI, in one binary (the code is the `palisade` library).

fn main() -> std::process::ExitCode {
    palisade::main()
}
