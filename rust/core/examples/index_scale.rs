//! The identity index at scale: synthesizes N rows (argument, default 10^7),
//! builds, saves, reopens (memory-mapped), and times lookups and searches.
//!
//!     cargo run -p jukicore-core --release --example index_scale -- 10000000 [dir]

use std::path::PathBuf;
use std::time::Instant;

use jukicore_core::index::{
    Hit, Index, Input, PlainKeys, Query, RetiredCodes, Rows, StrCol, NO_ROW,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KANJI: &str = "山田中川佐藤鈴木高橋伊渡辺小林加吉松井上村石清水森池野原藤本岡近後長谷斎坂遠青西東北南大島竹内太郎次花子美恵一二三健誠翔陽菜愛結真優斗";

fn word(r: &mut Rng, chars: &[char], min: u64, extra: u64) -> String {
    (0..min + r.below(extra + 1))
        .map(|_| chars[r.below(chars.len() as u64) as usize])
        .collect()
}

struct Col {
    data: Vec<u8>,
    offs: Vec<i64>,
}
impl Col {
    fn new() -> Self {
        Col {
            data: Vec::new(),
            offs: vec![0],
        }
    }
    fn push(&mut self, s: &str) {
        self.data.extend_from_slice(s.as_bytes());
        self.offs.push(self.data.len() as i64);
    }
    fn col(&self) -> StrCol<'_> {
        StrCol::new_i64(&self.data, &self.offs)
    }
}

fn vm(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string() + " kB")
        .unwrap_or_default()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(10_000_000, |a| a.parse().unwrap());
    let dir = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "/tmp".into()));
    let chars: Vec<char> = KANJI.chars().collect();
    let mut r = Rng(42);
    let t = Instant::now();
    let families: Vec<String> = (0..20_000).map(|_| word(&mut r, &chars, 1, 2)).collect();
    let givens: Vec<String> = (0..50_000).map(|_| word(&mut r, &chars, 1, 2)).collect();
    let prefs: Vec<String> = (0..47)
        .map(|i| format!("{}県", word(&mut Rng(i), &chars, 2, 1)))
        .collect();
    let cities: Vec<String> = (0..1741)
        .map(|i| format!("{}市", word(&mut Rng(1000 + i), &chars, 2, 1)))
        .collect();
    let towns: Vec<String> = (0..3000)
        .map(|i| format!("{}町", word(&mut Rng(9000 + i), &chars, 1, 2)))
        .collect();
    let mut code = Vec::with_capacity(n);
    let (mut fam, mut giv, mut adr, mut lg, mut rsn) =
        (Col::new(), Col::new(), Col::new(), Col::new(), Col::new());
    let (mut birth, mut sex, mut status, mut change) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let reasons = [
        "出生",
        "転入",
        "転居",
        "氏名変更",
        "住民票コード変更",
        "職権記載",
    ];
    for i in 0..n as u64 {
        // a bijection of 0..10^10 (multiplier coprime to 10): distinct, spread
        let body = (i.wrapping_mul(7_919_000_003) + 12_345) % 10_000_000_000;
        code.push(body * 10 + body % 7);
        fam.push(&families[r.below(families.len() as u64) as usize]);
        giv.push(&givens[r.below(givens.len() as u64) as usize]);
        let city = r.below(1741) as usize;
        adr.push(&format!(
            "{}{}{}{}-{}-{}",
            prefs[city % 47],
            cities[city],
            towns[(city * 7 + r.below(40) as usize) % 3000],
            1 + r.below(9),
            1 + r.below(30),
            1 + r.below(20)
        ));
        lg.push(&format!("{:06}", 10_000 + city * 37));
        rsn.push(reasons[r.below(6) as usize]);
        birth.push(r.below(40_000) as i32 - 20_000);
        sex.push([1i8, 2][r.below(2) as usize]);
        status.push((r.below(20) == 0) as u8);
        change.push(r.below(20_000) as i32);
    }
    // retired codes: the bijection's next images (never among the rows)
    let m = n as u64 / 100;
    let old: Vec<u64> = (n as u64..n as u64 + m)
        .map(|i| {
            let body = (i.wrapping_mul(7_919_000_003) + 12_345) % 10_000_000_000;
            body * 10 + body % 7
        })
        .collect();
    let new: Vec<u64> = code[..m as usize].to_vec();
    let on: Vec<i32> = vec![19_000; m as usize];
    println!(
        "synthesized {n} rows in {:.1}s; VmHWM {}",
        t.elapsed().as_secs_f64(),
        vm("VmHWM")
    );
    let input = Input {
        rows: Rows {
            code: &code,
            family_name: fam.col(),
            given_name: giv.col(),
            address: adr.col(),
            lg_code: lg.col(),
            change_reason: rsn.col(),
            birth_date: &birth,
            sex: &sex,
            status: &status,
            change_date: &change,
        },
        retired: RetiredCodes {
            old: &old,
            new: &new,
            retired_on: &on,
        },
        store_id: "center",
        mark: 1,
    };
    let rss0 = vm("VmRSS");
    let t = Instant::now();
    let mut idx = Index::build(&input, &PlainKeys).unwrap();
    println!(
        "build: {:.2}s, memory_bytes {:.2} GB; VmRSS before {rss0}, after {}; VmHWM {}",
        t.elapsed().as_secs_f64(),
        idx.memory_bytes() as f64 / 1e9,
        vm("VmRSS"),
        vm("VmHWM")
    );
    let path = dir.join(format!("index_scale_{n}.idx"));
    let t = Instant::now();
    idx.save(&path).unwrap();
    println!(
        "save: {:.2}s ({:.2} GB)",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&path).unwrap().len() as f64 / 1e9
    );
    drop(idx);
    // the queries, before the input is dropped
    let mut qr = Rng(7);
    let probe: Vec<u64> = (0..10_000_000)
        .map(|_| code[qr.below(n as u64) as usize])
        .collect();
    let sq: Vec<usize> = (0..100_000).map(|_| qr.below(n as u64) as usize).collect();
    let s = |c: &Col, i: usize| -> String {
        String::from_utf8(c.data[c.offs[i] as usize..c.offs[i + 1] as usize].to_vec()).unwrap()
    };
    let queries: Vec<(String, String, i32, i8, String)> = sq
        .iter()
        .map(|&i| (s(&fam, i), s(&giv, i), birth[i], sex[i], s(&adr, i)))
        .collect();
    drop((fam, giv, adr, lg, rsn, birth, sex, status, change, code));
    let t = Instant::now();
    let idx = Index::open(&path).unwrap();
    println!(
        "open: {:.2}s (mapped, every checksum and invariant verified); VmRSS {}",
        t.elapsed().as_secs_f64(),
        vm("VmRSS")
    );
    for round in 0..2 {
        let t = Instant::now();
        let hits = idx.lookup(&probe);
        let t1 = t.elapsed().as_secs_f64();
        let rows: Vec<u32> = hits
            .iter()
            .map(|h| match h {
                Hit::Found(r) => *r,
                _ => NO_ROW,
            })
            .collect();
        let g = idx.gather(&rows);
        println!(
            "10M lookups (round {round}): lookup {t1:.2}s, with the items gathered {:.2}s ({} found)",
            t.elapsed().as_secs_f64(),
            g.present.iter().filter(|p| **p).count()
        );
    }
    let mut single = Vec::with_capacity(100_000);
    for &c in &probe[..100_000] {
        let t = Instant::now();
        let h = idx.lookup(&[c]);
        let Hit::Found(r) = h[0] else { panic!() };
        let g = idx.gather(&[r]);
        std::hint::black_box(g);
        single.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "single code lookup + gather: p50 {:.1} µs, p99 {:.1} µs",
        pct(&mut single, 0.5),
        pct(&mut single, 0.99)
    );
    for (label, with_addr) in [("family+given+birth+sex", false), ("+ address", true)] {
        let mut lat = Vec::with_capacity(queries.len());
        let mut total = 0usize;
        for (f, g, b, x, a) in &queries {
            let t = Instant::now();
            let rows = idx.search(
                &Query {
                    family_name: f,
                    given_name: g,
                    birth_date: *b,
                    sex: Some(*x),
                    address: with_addr.then_some(a.as_str()),
                },
                &PlainKeys,
            );
            let got = idx.gather(&rows);
            total += got.code.len();
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        println!(
            "100k searches ({label}) + gather: p50 {:.1} µs, p99 {:.1} µs, {:.2} rows per search",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            total as f64 / queries.len() as f64
        );
    }
    println!("VmRSS at the end {}, VmHWM {}", vm("VmRSS"), vm("VmHWM"));
    let _ = std::fs::remove_file(&path);
}
