//! In-process instantiate-and-call latency: a fresh instance per call, the
//! way a serverless host runs a function, with the engine from
//! `wasmlayer_core::build_engine`, pre-instantiation (`InstancePre`), a
//! store carrying the platform's `MemoryLimiter` and an epoch deadline.
//!
//! `cargo bench -p wasmlayer-core --bench instantiate [-- --quick]`

use std::time::{Duration, Instant};
use wasmlayer_core::limits::{Limits, MemoryLimiter};
use wasmlayer_core::{build_engine, EngineOptions, PoolingOptions};
use wasmtime::{Engine, InstancePre, Linker, Module, Store};

const TRIVIAL: &str = r#"(module (memory 1) (func (export "run") (result i32) i32.const 42))"#;

/// The same function, but importing a WASI call as a real p1 guest would.
const WASI_TRIVIAL: &str = r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "run") (result i32) i32.const 42))"#;

struct Plain {
    limiter: MemoryLimiter,
}

struct Wasi {
    limiter: MemoryLimiter,
    wasi: wasmtime_wasi::p1::WasiP1Ctx,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let mean = samples.iter().map(|d| d.as_secs_f64()).sum::<f64>() / samples.len() as f64 * 1e6;
    println!(
        "{name:<44} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99),
        mean
    );
}

fn measure(iterations: usize, warmup: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warmup {
        f();
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples
}

fn plain(engine: &Engine) -> InstancePre<Plain> {
    let module = Module::new(engine, TRIVIAL).expect("compile");
    Linker::new(engine)
        .instantiate_pre(&module)
        .expect("pre-instantiate")
}

fn call_plain(engine: &Engine, pre: &InstancePre<Plain>) {
    let mut store = Store::new(
        engine,
        Plain {
            limiter: MemoryLimiter::new(&Limits::default()),
        },
    );
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = pre.instantiate(&mut store).expect("instantiate");
    let run = instance
        .get_typed_func::<(), i32>(&mut store, "run")
        .expect("export");
    assert_eq!(run.call(&mut store, ()).expect("call"), 42);
}

fn wasi(engine: &Engine) -> InstancePre<Wasi> {
    let module = Module::new(engine, WASI_TRIVIAL).expect("compile");
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut Wasi| &mut s.wasi).expect("link");
    linker.instantiate_pre(&module).expect("pre-instantiate")
}

fn call_wasi(engine: &Engine, pre: &InstancePre<Wasi>) {
    let wasi = wasmtime_wasi::WasiCtxBuilder::new().build_p1();
    let mut store = Store::new(
        engine,
        Wasi {
            limiter: MemoryLimiter::new(&Limits::default()),
            wasi,
        },
    );
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = pre.instantiate(&mut store).expect("instantiate");
    let run = instance
        .get_typed_func::<(), i32>(&mut store, "run")
        .expect("export");
    assert_eq!(run.call(&mut store, ()).expect("call"), 42);
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (iterations, warmup) = if quick {
        (20_000, 2_000)
    } else {
        (200_000, 20_000)
    };
    let pooling = build_engine(&EngineOptions {
        fuel: false,
        pooling: Some(PoolingOptions::default()),
        without_p3: false,
    })
    .expect("engine");
    let on_demand = build_engine(&EngineOptions::default()).expect("engine");

    println!("instantiate + call, a fresh store and instance per iteration ({iterations} iterations, µs)");
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9}",
        "variant", "p50", "p90", "p99", "mean"
    );
    for (name, engine) in [
        ("pooling allocator", &pooling),
        ("on-demand allocator", &on_demand),
    ] {
        let pre = plain(engine);
        report(
            &format!("trivial, {name}"),
            measure(iterations, warmup, || call_plain(engine, &pre)),
        );
        let pre = wasi(engine);
        report(
            &format!("trivial + WASI p1 context, {name}"),
            measure(iterations, warmup, || call_wasi(engine, &pre)),
        );
    }
}
