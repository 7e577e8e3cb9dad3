//! What a login costs in password hashing: argon2id verify at the default cost (and a cheap
//! one, for comparison). One verify per login, on a store worker: logins/s per core ≈ 1 / time.

use chatserver::store::PasswordHasher;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Duration;

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("argon2id");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for (name, hasher) in [
        ("default m=19456 t=2 p=1", PasswordHasher::default()),
        (
            "cheap m=256 t=1 p=1",
            PasswordHasher::new(256, 1, 1).expect("params"),
        ),
    ] {
        let hash = hasher.hash("correct horse battery staple").expect("hash");
        group.bench_function(format!("verify {name}"), |b| {
            b.iter(|| {
                assert!(hasher.verify(black_box("correct horse battery staple"), black_box(&hash)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
