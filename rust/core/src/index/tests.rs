use super::*;

/// Owned columns of test rows.
#[derive(Default, Clone)]
struct Cols {
    code: Vec<u64>,
    family: Vec<String>,
    given: Vec<String>,
    address: Vec<String>,
    lg: Vec<String>,
    reason: Vec<String>,
    birth: Vec<i32>,
    sex: Vec<i8>,
    status: Vec<u8>,
    change: Vec<i32>,
}

struct Arrowish {
    data: Vec<u8>,
    offs: Vec<i32>,
}

fn arrowish(v: &[String]) -> Arrowish {
    let mut data = Vec::new();
    let mut offs = vec![0i32];
    for s in v {
        data.extend_from_slice(s.as_bytes());
        offs.push(data.len() as i32);
    }
    Arrowish { data, offs }
}

struct Built {
    f: Arrowish,
    g: Arrowish,
    a: Arrowish,
    l: Arrowish,
    r: Arrowish,
}

impl Cols {
    #[allow(clippy::too_many_arguments)]
    fn push(&mut self, code: u64, f: &str, g: &str, a: &str, birth: i32, sex: i8) {
        self.code.push(code);
        self.family.push(f.into());
        self.given.push(g.into());
        self.address.push(a.into());
        self.lg.push("131016".into());
        self.reason.push("birth".into());
        self.birth.push(birth);
        self.sex.push(sex);
        self.status.push(0);
        self.change.push(birth);
    }
    fn arrow(&self) -> Built {
        Built {
            f: arrowish(&self.family),
            g: arrowish(&self.given),
            a: arrowish(&self.address),
            l: arrowish(&self.lg),
            r: arrowish(&self.reason),
        }
    }
    fn rows<'a>(&'a self, b: &'a Built) -> Rows<'a> {
        Rows {
            code: &self.code,
            family_name: StrCol::new_i32(&b.f.data, &b.f.offs),
            given_name: StrCol::new_i32(&b.g.data, &b.g.offs),
            address: StrCol::new_i32(&b.a.data, &b.a.offs),
            lg_code: StrCol::new_i32(&b.l.data, &b.l.offs),
            change_reason: StrCol::new_i32(&b.r.data, &b.r.offs),
            birth_date: &self.birth,
            sex: &self.sex,
            status: &self.status,
            change_date: &self.change,
        }
    }
}

fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 11
}

fn sample(n: usize, seed: u64) -> Cols {
    let mut s = seed;
    let mut c = Cols::default();
    let mut seen = std::collections::HashSet::new();
    while c.code.len() < n {
        let code = lcg(&mut s) % CODE_LIMIT;
        if !seen.insert(code) {
            continue;
        }
        let f = format!("姓{}", lcg(&mut s) % 50);
        let g = format!("名 {}", lcg(&mut s) % 80);
        let a = format!("東京都 千代田区{}-{}", lcg(&mut s) % 30, lcg(&mut s) % 5);
        let birth = (lcg(&mut s) % 400) as i32 - 200;
        let sex = [1i8, 2, 9][(lcg(&mut s) % 3) as usize];
        c.push(code, &f, &g, &a, birth, sex);
        let i = c.code.len() - 1;
        c.lg[i] = format!("13{:04}", lcg(&mut s) % 20);
        c.reason[i] = ["birth", "move-in", "name change"][(lcg(&mut s) % 3) as usize].into();
        c.status[i] = lcg(&mut s).is_multiple_of(10) as u8;
        c.change[i] = (lcg(&mut s) % 20000) as i32;
    }
    c
}

fn build(c: &Cols, mask: u64) -> Index {
    let b = c.arrow();
    Index::build_masked(
        &Input {
            rows: c.rows(&b),
            retired: RetiredCodes::default(),
            store_id: "center-1",
            mark: 7,
        },
        &PlainKeys,
        mask,
    )
    .unwrap()
}

/// The expected rows of a search, by brute force over `c`.
fn brute(c: &Cols, f: &str, g: &str, birth: i32, sex: Option<i8>, addr: Option<&str>) -> Vec<u64> {
    let k = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let mut v: Vec<u64> = (0..c.code.len())
        .filter(|&i| {
            k(&c.family[i]) == k(f)
                && k(&c.given[i]) == k(g)
                && c.birth[i] == birth
                && sex.is_none_or(|s| c.sex[i] == s)
                && addr.is_none_or(|a| k(&c.address[i]) == k(a))
        })
        .map(|i| c.code[i])
        .collect();
    v.sort_unstable();
    v
}

fn codes_of(idx: &Index, rows: &[Row]) -> Vec<u64> {
    let mut v = idx.gather(rows).code;
    v.sort_unstable();
    v
}

fn check_all(idx: &Index, c: &Cols) {
    let hits = idx.lookup(&c.code);
    let rows: Vec<Row> = hits
        .iter()
        .map(|h| match h {
            Hit::Found(r) => *r,
            other => panic!("{other:?}"),
        })
        .collect();
    let g = idx.gather(&rows);
    assert_eq!(g.code, c.code);
    for i in 0..c.code.len() {
        assert_eq!(g.family_name.value(i), c.family[i]);
        assert_eq!(g.given_name.value(i), c.given[i]);
        assert_eq!(g.address.value(i), c.address[i]);
        assert_eq!(g.lg_code.value(i), c.lg[i]);
        assert_eq!(g.change_reason.value(i), c.reason[i]);
    }
    assert_eq!(g.birth_date, c.birth);
    assert_eq!(g.sex, c.sex);
    assert_eq!(g.status, c.status);
    assert_eq!(g.change_date, c.change);
    assert!(g.present.iter().all(|&p| p));
}

#[test]
fn every_code_is_found_with_its_items_and_unknown_codes_are_not() {
    for n in [1, 10, 5000, 40_000] {
        let c = sample(n, n as u64);
        let idx = build(&c, u64::MAX);
        assert_eq!(idx.len(), n);
        check_all(&idx, &c);
        let known: std::collections::HashSet<u64> = c.code.iter().copied().collect();
        let mut s = 99;
        let unknown: Vec<u64> = (0..10_000)
            .map(|_| lcg(&mut s) % CODE_LIMIT)
            .chain([0, CODE_LIMIT - 1, CODE_LIMIT, u64::MAX])
            .filter(|x| !known.contains(x))
            .collect();
        assert!(idx.lookup(&unknown).iter().all(|h| *h == Hit::NotFound));
        let mixed: Vec<u64> = c.code.iter().copied().interleave_unknown(&unknown);
        items_agree(&idx, &mixed);
        // a large gather with absent rows among the present ones
        let hits = idx.lookup(&c.code);
        let rows: Vec<Row> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Hit::Found(r) if i % 3 != 1 => *r,
                _ => NO_ROW,
            })
            .collect();
        let g = idx.gather(&rows);
        for i in 0..n {
            if i % 3 == 1 {
                assert!(!g.present[i]);
                assert_eq!((g.code[i], g.sex[i], g.address.value(i)), (0, 0, ""));
            } else {
                assert!(g.present[i]);
                assert_eq!(g.code[i], c.code[i]);
                assert_eq!(g.address.value(i), c.address[i]);
                assert_eq!(g.change_reason.value(i), c.reason[i]);
            }
        }
    }
}

#[test]
fn sequential_small_codes_fall_in_one_bucket_and_still_work() {
    let mut c = Cols::default();
    for i in 0..3000u64 {
        c.push(i * 3 + 1, "山田", "太郎", "addr", i as i32, 1);
    }
    let idx = build(&c, u64::MAX);
    check_all(&idx, &c);
    assert_eq!(idx.lookup(&[2, 3, 9000]), vec![Hit::NotFound; 3]);
}

#[test]
fn retired_codes_answer_their_successor() {
    let c = sample(100, 3);
    let b = c.arrow();
    let input = Input {
        rows: c.rows(&b),
        retired: RetiredCodes {
            old: &[5, 77_777_777_777],
            new: &[c.code[0], c.code[1]],
            retired_on: &[100, 200],
        },
        store_id: "s",
        mark: 1,
    };
    let idx = Index::build(&input, &PlainKeys).unwrap();
    assert_eq!(
        idx.lookup(&[5, 77_777_777_777, 6]),
        vec![
            Hit::Retired {
                new: c.code[0],
                on: 100
            },
            Hit::Retired {
                new: c.code[1],
                on: 200
            },
            Hit::NotFound
        ]
    );
    // a retired code that is also live, or retired twice, is refused
    let bad = Input {
        retired: RetiredCodes {
            old: &[c.code[2]],
            new: &[c.code[0]],
            retired_on: &[1],
        },
        ..input
    };
    assert!(matches!(
        Index::build(&bad, &PlainKeys),
        Err(CoreError::InvalidRows { .. })
    ));
    let twice = Input {
        retired: RetiredCodes {
            old: &[5, 5],
            new: &[c.code[0], c.code[1]],
            retired_on: &[1, 2],
        },
        ..input
    };
    assert!(matches!(
        Index::build(&twice, &PlainKeys),
        Err(CoreError::InvalidRows { .. })
    ));
}

#[test]
fn search_exact_ambiguous_and_not_found_agree_with_brute_force() {
    let c = sample(20_000, 11);
    for mask in [u64::MAX, 0xf, 0] {
        let idx = build(&c, mask);
        let mut s = 5;
        for k in 0..300 {
            let i = (lcg(&mut s) % c.code.len() as u64) as usize;
            let sex = (k % 2 == 0).then_some(c.sex[i]);
            let addr = (k % 3 == 0).then_some(c.address[i].as_str());
            // spaces inside the query do not matter (PlainKeys)
            let f = format!(" {} ", c.family[i]);
            let q = Query {
                family_name: &f,
                given_name: &c.given[i],
                birth_date: c.birth[i],
                sex,
                address: addr,
            };
            let got = idx.search(&q, &PlainKeys);
            let want = brute(&c, &f, &c.given[i], c.birth[i], sex, addr);
            assert!(want.contains(&c.code[i]));
            assert_eq!(codes_of(&idx, &got), want, "mask {mask:x}");
            // not found: a birth date nobody has
            let q = Query {
                birth_date: 99_999,
                ..q
            };
            assert!(idx.search(&q, &PlainKeys).is_empty());
        }
    }
}

#[test]
fn a_forced_hash_collision_never_produces_a_wrong_match() {
    // every row under one hash: only exact key equality can decide
    let mut c = Cols::default();
    c.push(10, "山田", "太郎", "東京都1", 100, 1);
    c.push(20, "山田", "次郎", "東京都1", 100, 1);
    c.push(30, "山田", "太郎", "東京都2", 100, 2);
    c.push(40, "山田", "太郎", "東京都1", 101, 1);
    c.push(50, "田山", "太郎", "東京都1", 100, 1);
    let idx = build(&c, 0);
    let q = |sex, addr| Query {
        family_name: "山田",
        given_name: "太郎",
        birth_date: 100,
        sex,
        address: addr,
    };
    assert_eq!(
        codes_of(&idx, &idx.search(&q(None, None), &PlainKeys)),
        vec![10, 30]
    );
    assert_eq!(
        codes_of(&idx, &idx.search(&q(Some(1), None), &PlainKeys)),
        vec![10]
    );
    assert_eq!(
        codes_of(&idx, &idx.search(&q(None, Some("東京都 2")), &PlainKeys)),
        vec![30]
    );
    assert!(idx.search(&q(Some(9), None), &PlainKeys).is_empty());
}

#[test]
fn bulk_search_reports_match_ambiguous_and_not_found() {
    let mut c = Cols::default();
    c.push(10, "山田", "太郎", "東京都1", 100, 1);
    c.push(30, "山田", "太郎", "東京都2", 100, 2);
    c.push(50, "鈴木", "花子", "大阪府", 200, 2);
    let idx = build(&c, u64::MAX);
    let fam = arrowish(&["山田".into(), "山田".into(), "鈴木".into(), "佐藤".into()]);
    let giv = arrowish(&["太郎".into(), "太郎".into(), "花子".into(), "一郎".into()]);
    let adr = arrowish(&["".into(), "東京都2".into(), "".into(), "".into()]);
    let validity = [0b0010u8];
    let q = Queries {
        family_name: StrCol::new_i32(&fam.data, &fam.offs),
        given_name: StrCol::new_i32(&giv.data, &giv.offs),
        birth_date: &[100, 100, 200, 1],
        sex: Some(&[0, 0, 2, 0]),
        address: Some(StrCol {
            validity: Some((&validity, 0)),
            ..StrCol::new_i32(&adr.data, &adr.offs)
        }),
    };
    let got = idx.search_many(&q, &PlainKeys).unwrap();
    let row = |code| match idx.lookup(&[code])[0] {
        Hit::Found(r) => r,
        h => panic!("{h:?}"),
    };
    assert_eq!(
        got,
        vec![
            Found::Ambiguous(vec![row(10), row(30)]),
            Found::Match(row(30)),
            Found::Match(row(50)),
            Found::NotFound
        ]
    );
    let bad = Queries {
        sex: Some(&[0, 3, 0, 0]),
        ..q
    };
    assert!(matches!(
        idx.search_many(&bad, &PlainKeys),
        Err(CoreError::InvalidRows { .. })
    ));
}

#[test]
fn build_refuses_bad_input_and_accepts_empty_input() {
    let c = Cols::default();
    let idx = build(&c, u64::MAX);
    assert_eq!(idx.len(), 0);
    assert_eq!(idx.lookup(&[1, 2]), vec![Hit::NotFound; 2]);
    assert!(idx
        .search(
            &Query {
                family_name: "a",
                given_name: "b",
                birth_date: 0,
                sex: None,
                address: None
            },
            &PlainKeys
        )
        .is_empty());
    let dir = tmpdir("empty");
    let mut idx = idx;
    idx.save(&dir.join("e.idx")).unwrap();
    assert_eq!(Index::open(&dir.join("e.idx")).unwrap().len(), 0);

    let mut c = sample(50, 1);
    c.code[7] = c.code[3];
    let b = c.arrow();
    let input = Input {
        rows: c.rows(&b),
        retired: RetiredCodes::default(),
        store_id: "s",
        mark: 0,
    };
    match Index::build(&input, &PlainKeys) {
        Err(CoreError::InvalidRows { rows, .. }) => assert_eq!(rows[0].row, 7),
        other => panic!("{:?}", other.err()),
    }
    let c = sample(50, 1);
    let b = c.arrow();
    let rows = c.rows(&b);
    let short = Input {
        rows: Rows {
            birth_date: &c.birth[1..],
            ..rows
        },
        retired: RetiredCodes::default(),
        store_id: "s",
        mark: 0,
    };
    assert!(matches!(
        Index::build(&short, &PlainKeys),
        Err(CoreError::Invalid(_))
    ));
    let mut bad_utf8 = b.f.data.clone();
    bad_utf8[0] = 0xff;
    let utf = Input {
        rows: Rows {
            family_name: StrCol::new_i32(&bad_utf8, &b.f.offs),
            ..rows
        },
        ..short
    };
    assert!(matches!(
        Index::build(&utf, &PlainKeys),
        Err(CoreError::InvalidRows { .. })
    ));
    let mut sex = c.sex.clone();
    sex[4] = 3;
    let s = Input {
        rows: Rows { sex: &sex, ..rows },
        ..short
    };
    match Index::build(&s, &PlainKeys) {
        Err(CoreError::InvalidRows { rows, .. }) => assert_eq!(rows[0].row, 4),
        other => panic!("{:?}", other.err()),
    }
    let big = vec![CODE_LIMIT; 50];
    let s = Input {
        rows: Rows { code: &big, ..rows },
        ..short
    };
    assert!(matches!(
        Index::build(&s, &PlainKeys),
        Err(CoreError::InvalidRows { .. })
    ));
    let nulls = [0u8; 7];
    let s = Input {
        rows: Rows {
            address: StrCol {
                validity: Some((&nulls, 0)),
                ..rows.address
            },
            ..rows
        },
        ..short
    };
    assert!(matches!(
        Index::build(&s, &PlainKeys),
        Err(CoreError::InvalidRows { .. })
    ));
    let long = "x".repeat(300);
    let s = Input {
        rows,
        store_id: &long,
        ..short
    };
    assert!(matches!(
        Index::build(&s, &PlainKeys),
        Err(CoreError::Invalid(_))
    ));
}

fn delta(idx: &mut Index, d: &Cols, removed: &[u64], retired: RetiredCodes<'_>, mark: u64) {
    let b = d.arrow();
    idx.apply_delta(&d.rows(&b), removed, &retired, mark, &PlainKeys)
        .unwrap();
}

#[test]
fn the_overlay_changes_adds_removes_and_retires() {
    let c = sample(3000, 21);
    let mut idx = build(&c, u64::MAX);
    let (moved, gone, changed) = (c.code[0], c.code[1], c.code[2]);
    let fresh = 12_345_678_901u64;
    let mut d = Cols::default();
    // a move: a new address
    d.push(
        moved,
        &c.family[0],
        &c.given[0],
        "北海道札幌市1-1",
        c.birth[0],
        c.sex[0],
    );
    // a new resident
    d.push(fresh, "新人", "太郎", "沖縄県那覇市", 5, 1);
    // a code change: the person under a new code, the old one retired
    let new_code = 98_765_432_109u64;
    d.push(
        new_code,
        &c.family[2],
        &c.given[2],
        &c.address[2],
        c.birth[2],
        c.sex[2],
    );
    delta(
        &mut idx,
        &d,
        &[gone],
        RetiredCodes {
            old: &[changed],
            new: &[new_code],
            retired_on: &[300],
        },
        8,
    );
    assert_eq!(idx.mark(), 8);
    assert_eq!(idx.len(), 3000 + 1 - 1);
    assert!(idx.overlay_len() >= 4);
    let hits = idx.lookup(&[moved, fresh, gone, changed, new_code]);
    assert_eq!(hits[2], Hit::NotFound);
    assert_eq!(
        hits[3],
        Hit::Retired {
            new: new_code,
            on: 300
        }
    );
    let rows: Vec<Row> = [hits[0], hits[1], hits[4]]
        .iter()
        .map(|h| match h {
            Hit::Found(r) => *r,
            h => panic!("{h:?}"),
        })
        .collect();
    let g = idx.gather(&rows);
    assert_eq!(g.address.value(0), "北海道札幌市1-1");
    assert_eq!(g.family_name.value(1), "新人");
    assert_eq!(g.code, vec![moved, fresh, new_code]);
    // search finds the overlay row, not the masked base row
    let q = |i: usize, addr: Option<&'static str>| {
        (c.family[i].clone(), c.given[i].clone(), c.birth[i], addr)
    };
    let (f, g0, b, _) = q(0, None);
    let found = idx.search(
        &Query {
            family_name: &f,
            given_name: &g0,
            birth_date: b,
            sex: None,
            address: None,
        },
        &PlainKeys,
    );
    assert!(found.contains(&rows[0]));
    assert!(found
        .iter()
        .all(|&r| idx.gather(&[r]).code[0] != moved || r == rows[0]));
    let old_addr = idx.search(
        &Query {
            family_name: &f,
            given_name: &g0,
            birth_date: b,
            sex: None,
            address: Some(&c.address[0]),
        },
        &PlainKeys,
    );
    assert!(!codes_of(&idx, &old_addr).contains(&moved));
    let (f, g1, b, _) = q(1, None);
    let found = idx.search(
        &Query {
            family_name: &f,
            given_name: &g1,
            birth_date: b,
            sex: None,
            address: None,
        },
        &PlainKeys,
    );
    assert!(!codes_of(&idx, &found).contains(&gone));
    // a second change of the same code supersedes the first overlay row
    let mut d2 = Cols::default();
    d2.push(
        moved,
        &c.family[0],
        &c.given[0],
        "北海道旭川市",
        c.birth[0],
        c.sex[0],
    );
    delta(&mut idx, &d2, &[], RetiredCodes::default(), 9);
    let Hit::Found(r) = idx.lookup(&[moved])[0] else {
        panic!()
    };
    assert_eq!(idx.gather(&[r]).address.value(0), "北海道旭川市");
    let found = idx.search(
        &Query {
            family_name: &c.family[0],
            given_name: &c.given[0],
            birth_date: c.birth[0],
            sex: None,
            address: Some("北海道札幌市1-1"),
        },
        &PlainKeys,
    );
    assert!(found.is_empty());
    assert_eq!(idx.len(), 3000);

    // saved: base + overlay folded, reopened equal
    let dir = tmpdir("overlay");
    let p = dir.join("o.idx");
    let before: Vec<Hit> = idx.lookup(&c.code);
    let gathered_before = gather_hits(&idx, &before);
    let asked: Vec<u64> = c
        .code
        .iter()
        .copied()
        .chain([fresh, gone, changed])
        .collect();
    items_agree(&idx, &asked);
    idx.save(&p).unwrap();
    assert_eq!(idx.overlay_len(), 0);
    let opened = Index::open(&p).unwrap();
    assert_eq!(opened.mark(), 9);
    assert_eq!(opened.len(), 3000);
    let after = opened.lookup(&c.code);
    assert_eq!(gather_hits(&opened, &after), gathered_before);
    items_agree(&opened, &asked);
    assert_eq!(
        opened.lookup(&[changed])[0],
        Hit::Retired {
            new: new_code,
            on: 300
        }
    );
    assert!(matches!(opened.lookup(&[fresh])[0], Hit::Found(_)));
}

/// `lookup_items` answers as `lookup` + `gather` do, its ids naming the same
/// entries in `dict_values`.
fn items_agree(idx: &Index, codes: &[u64]) {
    let hits = idx.lookup(codes);
    let (_, g) = gather_hits(idx, &hits);
    let l = idx.lookup_items(codes);
    let dict = |item: TextItem, id: i32| -> String {
        let (bytes, offs) = idx.dict_values(item);
        let (o, b) = (offs.as_slice(), bytes.as_slice());
        let i = id as usize;
        String::from_utf8(b[o[i] as usize..o[i + 1] as usize].to_vec()).unwrap()
    };
    assert_eq!(l.hit.len(), codes.len());
    let mut found = 0;
    let mut retired = 0;
    for (i, h) in hits.iter().enumerate() {
        match *h {
            Hit::Found(_) => {
                found += 1;
                assert_eq!(l.hit[i], 0);
                assert_eq!(
                    dict(TextItem::FamilyName, l.family_name[i]),
                    g.family_name.value(i)
                );
                assert_eq!(
                    dict(TextItem::GivenName, l.given_name[i]),
                    g.given_name.value(i)
                );
                assert_eq!(dict(TextItem::LgCode, l.lg_code[i]), g.lg_code.value(i));
                assert_eq!(
                    dict(TextItem::ChangeReason, l.change_reason[i]),
                    g.change_reason.value(i)
                );
                assert_eq!(l.address.value(i), g.address.value(i));
                assert_eq!(
                    (l.birth_date[i], l.sex[i], l.status[i], l.change_date[i]),
                    (g.birth_date[i], g.sex[i], g.status[i], g.change_date[i])
                );
                assert_eq!((l.new_code[i], l.retired_on[i]), (0, 0));
            }
            Hit::Retired { new, on } => {
                retired += 1;
                assert_eq!(l.hit[i], 1);
                assert_eq!((l.new_code[i], l.retired_on[i]), (new, on));
                assert_eq!(l.address.value(i), "");
            }
            Hit::NotFound => {
                assert_eq!(l.hit[i], 2);
                assert_eq!((l.address.value(i), l.family_name[i]), ("", 0));
            }
        }
    }
    assert_eq!((l.found, l.retired), (found, retired));
}

fn gather_hits(idx: &Index, hits: &[Hit]) -> (Vec<String>, Gathered) {
    let rows: Vec<Row> = hits
        .iter()
        .map(|h| match h {
            Hit::Found(r) => *r,
            _ => NO_ROW,
        })
        .collect();
    let kinds = hits
        .iter()
        .map(|h| match h {
            Hit::Found(_) => "found".to_string(),
            h => format!("{h:?}"),
        })
        .collect();
    (kinds, idx.gather(&rows))
}

#[test]
fn delta_is_checked_before_anything_changes() {
    let c = sample(100, 2);
    let mut idx = build(&c, u64::MAX);
    let mut d = Cols::default();
    d.push(c.code[0], "a", "b", "c", 1, 1);
    d.push(c.code[0], "a", "b", "c", 1, 3);
    let b = d.arrow();
    assert!(idx
        .apply_delta(&d.rows(&b), &[], &RetiredCodes::default(), 5, &PlainKeys)
        .is_err());
    assert_eq!(idx.overlay_len(), 0);
    assert_eq!(idx.mark(), 7);
    check_all(&idx, &c);
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("jkc-index-{tag}-{}", std::process::id()));
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn save_and_open_round_trip() {
    let c = sample(30_000, 8);
    let mut idx = build(&c, u64::MAX);
    let dir = tmpdir("rt");
    let p = dir.join("i.idx");
    idx.save(&p).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let o = Index::open(&p).unwrap();
    assert_eq!((o.store_id(), o.mark(), o.len()), ("center-1", 7, 30_000));
    check_all(&o, &c);
    assert_eq!(idx.sections(), o.sections());
    let q = Query {
        family_name: &c.family[5],
        given_name: &c.given[5],
        birth_date: c.birth[5],
        sex: None,
        address: None,
    };
    assert_eq!(o.search(&q, &PlainKeys), idx.search(&q, &PlainKeys));
    // an opened index takes a delta and saves over its own file
    let mut o = o;
    let mut d = Cols::default();
    d.push(c.code[0], "変更", "後", "x", 1, 2);
    delta(&mut o, &d, &[], RetiredCodes::default(), 10);
    o.save(&p).unwrap();
    let o2 = Index::open(&p).unwrap();
    let Hit::Found(r) = o2.lookup(&[c.code[0]])[0] else {
        panic!()
    };
    assert_eq!(o2.gather(&[r]).family_name.value(0), "変更");
    assert_eq!(o2.mark(), 10);
}

#[test]
fn every_damage_to_the_file_is_corrupt() {
    let c = sample(500, 4);
    let mut idx = build(&c, u64::MAX);
    let dir = tmpdir("flip");
    let p = dir.join("i.idx");
    idx.save(&p).unwrap();
    let good = fs::read(&p).unwrap();
    let q = dir.join("bad.idx");
    let corrupt = |bytes: &[u8], what: &str| {
        fs::write(&q, bytes).unwrap();
        match Index::open(&q) {
            Err(CoreError::Corrupt(m)) => m,
            Err(e) => panic!("{what}: {e:?}"),
            Ok(_) => panic!("{what}: opened"),
        }
    };
    // every byte of the file, flipped
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        corrupt(&bad, &format!("flip at {i}"));
    }
    for n in [
        0,
        1,
        8,
        15,
        16,
        100,
        FIXED,
        FIXED + 100,
        good.len() / 2,
        good.len() - 1,
    ] {
        let m = corrupt(&good[..n], &format!("truncated to {n}"));
        assert!(m.contains("truncated") || m.contains("magic"), "{m}");
    }
    let mut longer = good.clone();
    longer.push(0);
    corrupt(&longer, "one byte more");
    let mut magic = good.clone();
    magic[..8].copy_from_slice(b"NOTJUKI!");
    assert!(corrupt(&magic, "magic").contains("bad magic"));
    let mut kind = good.clone();
    kind[8..16].copy_from_slice(b"CODEREG ");
    assert!(corrupt(&kind, "kind").contains("CODEREG"));
    let mut version = good.clone();
    version[16..20].copy_from_slice(&2u32.to_le_bytes());
    assert!(corrupt(&version, "version").contains("version 2"));
    // a code registry file is refused as a foreign kind
    let mut reg = crate::registry::Registry::new();
    reg.generate(10).unwrap();
    let rp = dir.join("reg.bin");
    reg.save(&rp).unwrap();
    assert!(matches!(Index::open(&rp), Err(CoreError::Corrupt(_))));
    // a directory is a file error, not a crash
    assert!(matches!(Index::open(&dir), Err(CoreError::File { .. })));
}

#[test]
fn a_crafted_file_with_valid_checksums_is_still_refused() {
    let c = sample(300, 6);
    let mut idx = build(&c, u64::MAX);
    let dir = tmpdir("craft");
    let p = dir.join("i.idx");
    idx.save(&p).unwrap();
    let good = fs::read(&p).unwrap();
    // rewrite one section's bytes and fix its checksum and the header's
    let reseal = |bytes: &mut Vec<u8>, section: usize, f: &dyn Fn(&mut [u8])| {
        let e = FIXED + 24 * section;
        let off = u64::from_le_bytes(bytes[e..e + 8].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(bytes[e + 8..e + 16].try_into().unwrap()) as usize;
        f(&mut bytes[off..off + len]);
        let sum = section_hash(&bytes[off..off + len]);
        bytes[e + 16..e + 24].copy_from_slice(&sum.to_le_bytes());
        let t = FIXED + 24 * SECTIONS;
        let h = xxh3_64(&bytes[..t]);
        bytes[t..t + 8].copy_from_slice(&h.to_le_bytes());
    };
    let q = dir.join("bad.idx");
    type Damage = Box<dyn Fn(&mut [u8])>;
    let cases: Vec<(usize, Damage)> = vec![
        // a row's family id past the dictionary
        (
            2,
            Box::new(|s: &mut [u8]| s[0..4].copy_from_slice(&u32::MAX.to_le_bytes())),
        ),
        // the code directory not ending at n
        (
            1,
            Box::new(|s: &mut [u8]| {
                let l = s.len();
                s[l - 4..].copy_from_slice(&1u32.to_le_bytes())
            }),
        ),
        // a block row past the end
        (
            4,
            Box::new(|s: &mut [u8]| s[0..4].copy_from_slice(&9999u32.to_le_bytes())),
        ),
        // codes out of order
        (
            0,
            Box::new(|s: &mut [u8]| {
                let (a, b) = s.split_at_mut(8);
                a.swap_with_slice(&mut b[..8])
            }),
        ),
        // a dictionary offset past its bytes
        (
            10,
            Box::new(|s: &mut [u8]| {
                let l = s.len();
                s[l - 8..].copy_from_slice(&u64::MAX.to_le_bytes())
            }),
        ),
        // non-UTF-8 family name bytes
        (9, Box::new(|s: &mut [u8]| s[0] = 0xff)),
    ];
    for (i, (section, f)) in cases.iter().enumerate() {
        let mut bad = good.clone();
        reseal(&mut bad, *section, f.as_ref());
        fs::write(&q, &bad).unwrap();
        assert!(
            matches!(Index::open(&q), Err(CoreError::Corrupt(_))),
            "case {i}"
        );
    }
}

#[test]
fn an_address_splits_at_its_first_digit() {
    for (a, place) in [
        ("東京都千代田区千代田1-1", "東京都千代田区千代田"),
        ("東京都千代田区千代田１－１", "東京都千代田区千代田"),
        ("大阪府大阪市", "大阪府大阪市"),
        ("", ""),
        ("1-2-3", ""),
        ("ｘ９", "ｘ"),
    ] {
        assert_eq!(&a[..address_split(a.as_bytes())], place, "{a}");
    }
}

trait Interleave {
    fn interleave_unknown(self, other: &[u64]) -> Vec<u64>;
}

impl<I: Iterator<Item = u64>> Interleave for I {
    /// The items with `other`'s between them, in turn, until both run out.
    fn interleave_unknown(self, other: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut o = other.iter();
        for x in self {
            out.push(x);
            if let Some(&y) = o.next() {
                out.push(y);
            }
        }
        out.extend(o);
        out
    }
}

/// The rows `a..b` of `c`.
fn slice(c: &Cols, a: usize, b: usize) -> Cols {
    Cols {
        code: c.code[a..b].to_vec(),
        family: c.family[a..b].to_vec(),
        given: c.given[a..b].to_vec(),
        address: c.address[a..b].to_vec(),
        lg: c.lg[a..b].to_vec(),
        reason: c.reason[a..b].to_vec(),
        birth: c.birth[a..b].to_vec(),
        sex: c.sex[a..b].to_vec(),
        status: c.status[a..b].to_vec(),
        change: c.change[a..b].to_vec(),
    }
}

#[test]
fn an_index_built_in_batches_is_the_index_built_at_once() {
    let c = sample(5_000, 11);
    let dir = std::env::temp_dir().join(format!("jukicore-builder-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let mut whole = build(&c, u64::MAX);
    whole.save(&dir.join("whole")).unwrap();
    let mut b = Builder::new();
    // a refused batch first: its rows numbered after those already taken; nothing taken
    for (lo, hi) in [(0, 1_000), (1_000, 1_001)] {
        let part = slice(&c, lo, hi);
        let arrow = part.arrow();
        b.push(&part.rows(&arrow)).unwrap();
    }
    let mut bad = slice(&c, 1_001, 1_500);
    bad.sex[3] = 4;
    let arrow = bad.arrow();
    match b.push(&bad.rows(&arrow)) {
        Err(CoreError::InvalidRows { rows, .. }) => assert_eq!(rows[0].row, 1_004),
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(b.len(), 1_001);
    for (lo, hi) in [(1_001, 1_500), (1_500, 1_500), (1_500, 5_000)] {
        let part = slice(&c, lo, hi);
        let arrow = part.arrow();
        b.push(&part.rows(&arrow)).unwrap();
    }
    let mut pieces = b
        .finish(&RetiredCodes::default(), "center-1", 7, &PlainKeys)
        .unwrap();
    pieces.save(&dir.join("pieces")).unwrap();
    assert_eq!(
        fs::read(dir.join("whole")).unwrap(),
        fs::read(dir.join("pieces")).unwrap()
    );
    // a batch with more distinct municipalities than an index holds, after a good one:
    // refused and taken back (its dictionary entries too), so the index is the good one's
    let small = slice(&c, 0, 300);
    let mut one = build(&small, u64::MAX);
    one.save(&dir.join("small")).unwrap();
    let mut b = Builder::new();
    let arrow = small.arrow();
    b.push(&small.rows(&arrow)).unwrap();
    let mut many = sample(LG_MAX + 1, 12);
    for (i, lg) in many.lg.iter_mut().enumerate() {
        *lg = format!("{:06}", i);
    }
    let arrow = many.arrow();
    assert!(matches!(
        b.push(&many.rows(&arrow)),
        Err(CoreError::Invalid(_))
    ));
    assert_eq!(b.len(), 300);
    let mut again = b
        .finish(&RetiredCodes::default(), "center-1", 7, &PlainKeys)
        .unwrap();
    again.save(&dir.join("again")).unwrap();
    assert_eq!(
        fs::read(dir.join("small")).unwrap(),
        fs::read(dir.join("again")).unwrap()
    );
    fs::remove_dir_all(&dir).unwrap();
}
