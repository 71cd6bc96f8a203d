//! Rough national-scale timings of the core alone (no Python):
//! `cargo run --release -p jukicore-core --example scale [n]`.
//! The benchmarks of record are the asv suite and `make bench`.

use std::time::Instant;

use jukicore_core::checkdigit::{self, Kind};
use jukicore_core::mynumber::Issuer;
use jukicore_core::registry::Registry;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(125_000_000);
    let mut reg = Registry::new();
    let t = Instant::now();
    let codes = reg.generate(n).unwrap();
    println!(
        "generate {n}: {:.2?}, registry {} MB",
        t.elapsed(),
        reg.memory_bytes() / 1_000_000
    );
    let t = Instant::now();
    let more = reg.generate(1_000_000).unwrap();
    println!("generate 1,000,000 more: {:.2?}", t.elapsed());
    let t = Instant::now();
    let ok = checkdigit::validate(Kind::ResidentCode, &codes).unwrap();
    println!(
        "validate {n}: {:.2?} ({} valid)",
        t.elapsed(),
        ok.iter().filter(|v| **v).count()
    );
    let dir = std::env::temp_dir().join("jkc-scale.bin");
    let t = Instant::now();
    reg.save(&dir).unwrap();
    println!(
        "save: {:.2?}, {} MB",
        t.elapsed(),
        std::fs::metadata(&dir).unwrap().len() / 1_000_000
    );
    let t = Instant::now();
    let back = Registry::load(&dir).unwrap();
    println!("load: {:.2?}", t.elapsed());
    assert_eq!(back.len(), reg.len());
    std::fs::remove_file(&dir).unwrap();
    drop(back);
    drop(more);
    let mut issuer = Issuer::new(&[7u8; 32]).unwrap();
    let t = Instant::now();
    let nums = issuer.issue(&codes).unwrap();
    println!("issue {} My Numbers: {:.2?}", nums.len(), t.elapsed());
}
