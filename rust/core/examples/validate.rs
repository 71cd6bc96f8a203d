//! Time check-digit validation of 100,000,000 codes in the core alone:
//! `cargo run --release -p jukicore-core --example validate`.
use std::time::Instant;

use jukicore_core::checkdigit::{self, Kind};

fn main() {
    let n = 100_000_000u64;
    let codes: Vec<u64> = (0..n)
        .map(|i| checkdigit::with_check_digit(Kind::ResidentCode, i * 97 % 10_000_000_000))
        .collect();
    for _ in 0..3 {
        let t = Instant::now();
        let ok = checkdigit::validate(Kind::ResidentCode, &codes).unwrap();
        println!(
            "validate {n}: {:.3?} ({} valid)",
            t.elapsed(),
            ok.iter().filter(|v| **v).count()
        );
    }
}
