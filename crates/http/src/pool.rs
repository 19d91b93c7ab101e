//! Fitting the instance pool to what the kernel allows.
//!
//! Every instance the pool can hold costs memory mappings: its execution
//! stack and the guard page below it are two, always, and a live instance's
//! linear memories and tables add a few more while it runs (the accessible
//! part of each slot, the copy-on-write image of its data). Linux refuses new
//! mappings past `vm.max_map_count` (65,530 by default), and then not only
//! the guest's allocation fails but also the host's own: an allocator that
//! cannot map memory aborts the process. So the pool is sized at start so
//! that a full pool still leaves the host room, and the same is checked for
//! the address space the pool reserves against `ulimit -v`.

use std::path::Path;

/// Mappings per pool slot that exist from the start: the stack and its guard page.
pub const MAPPINGS_PER_SLOT: u64 = 2;
/// Mappings a memory slot adds once used (it keeps them while warm): its
/// accessible part and the inaccessible rest split off behind it, with room
/// for one more (a copy-on-write image, where one is mapped). Tables come
/// from one readable mapping and add none.
pub const MAPPINGS_PER_MEMORY: u64 = 3;
/// Mappings kept free for the host itself: allocator arenas, thread stacks,
/// the compiled code of reloaded versions, libraries.
pub const HOST_MAPPINGS: u64 = 4096;

/// What the pool of one server needs.
#[derive(Debug, Clone, Copy)]
pub struct PoolShape {
    /// Instances alive at once.
    pub instances: u32,
    /// Linear memory slots per instance.
    pub memories_per_instance: u32,
    /// Address space one memory slot reserves, guard included.
    pub memory_slot_bytes: u64,
    /// Address space one execution stack reserves, guard included.
    pub stack_bytes: u64,
}

impl PoolShape {
    /// Mappings a full pool needs, every instance live.
    pub fn mappings(&self, instances: u32) -> u64 {
        let n = instances as u64;
        n * MAPPINGS_PER_SLOT + n * self.memories_per_instance as u64 * MAPPINGS_PER_MEMORY
    }

    /// Address space the pool reserves.
    pub fn reservation(&self, instances: u32) -> u64 {
        let n = instances as u64;
        n * self.memories_per_instance as u64 * self.memory_slot_bytes + n * self.stack_bytes
    }
}

/// The system's limits that bound a pool.
#[derive(Debug, Clone, Copy)]
pub struct SystemLimits {
    /// `vm.max_map_count`, if known.
    pub max_map_count: Option<u64>,
    /// Mappings the process has now.
    pub mappings_now: u64,
    /// `ulimit -v` in bytes, if set.
    pub address_space: Option<u64>,
    /// Address space the process uses now.
    pub address_space_now: u64,
}

impl SystemLimits {
    /// Reads the limits of this process from /proc.
    pub fn read() -> SystemLimits {
        let read = |p: &str| std::fs::read_to_string(Path::new(p)).unwrap_or_default();
        let status = read("/proc/self/status");
        let vm_size = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let address_space = read("/proc/self/limits").lines().find_map(|l| {
            let rest = l.strip_prefix("Max address space")?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        });
        SystemLimits {
            max_map_count: read("/proc/sys/vm/max_map_count").trim().parse().ok(),
            mappings_now: read("/proc/self/maps").lines().count() as u64,
            address_space,
            address_space_now: vm_size,
        }
    }
}

/// The outcome of fitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// The pool fits as asked.
    Fits,
    /// Only this many instances fit; the message says why and what to raise.
    Reduced { instances: u32, why: String },
    /// Not even one instance fits.
    Impossible(String),
}

/// Fits `shape` to `limits`.
pub fn fit(shape: &PoolShape, limits: &SystemLimits) -> Fit {
    let asked = shape.instances;
    let mut most = asked;
    let mut reasons = Vec::new();
    if let Some(max) = limits.max_map_count {
        let room = max.saturating_sub(limits.mappings_now + HOST_MAPPINGS);
        let per = shape.mappings(1);
        let fits = (room / per).min(u32::MAX as u64) as u32;
        if fits < most {
            most = fits;
            let need = limits.mappings_now + HOST_MAPPINGS + shape.mappings(asked);
            reasons.push(format!(
                "a pool of {asked} needs up to {} memory mappings and vm.max_map_count is {max}; \
                 raise it with `sysctl -w vm.max_map_count={}`",
                shape.mappings(asked),
                need.next_power_of_two().max(need)
            ));
        }
    }
    if let Some(limit) = limits.address_space {
        // Keep a quarter of the rest for the host.
        let room = limit.saturating_sub(limits.address_space_now) / 4 * 3;
        let per = shape.reservation(1).max(1);
        let fits = (room / per).min(u32::MAX as u64) as u32;
        if fits < most {
            most = fits;
            reasons.push(format!(
                "a pool of {asked} reserves {} of address space and `ulimit -v` allows {}; \
                 raise the limit or lower max_instance_memory",
                wasmlayer_core::limits::format_size(shape.reservation(asked)),
                wasmlayer_core::limits::format_size(limit)
            ));
        }
    }
    if most >= asked {
        Fit::Fits
    } else if most == 0 {
        Fit::Impossible(reasons.join("; "))
    } else {
        Fit::Reduced {
            instances: most,
            why: reasons.join("; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(instances: u32) -> PoolShape {
        PoolShape {
            instances,
            memories_per_instance: 1,
            memory_slot_bytes: (2 << 20) + (64 << 10),
            stack_bytes: 2 << 20,
        }
    }

    fn limits(max_map_count: u64) -> SystemLimits {
        SystemLimits {
            max_map_count: Some(max_map_count),
            mappings_now: 200,
            address_space: None,
            address_space_now: 0,
        }
    }

    #[test]
    fn a_default_kernel_fits_a_smaller_pool_and_says_what_to_raise() {
        assert_eq!(fit(&shape(1000), &limits(65_530)), Fit::Fits);
        match fit(&shape(20_000), &limits(65_530)) {
            Fit::Reduced { instances, why } => {
                assert!(instances < 20_000 && instances > 10_000, "{instances}");
                assert!(
                    shape(instances).mappings(instances) + 200 + HOST_MAPPINGS <= 65_530,
                    "{instances}"
                );
                assert!(why.contains("vm.max_map_count"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fit(&shape(20_000), &limits(1 << 20)), Fit::Fits);
        assert!(matches!(fit(&shape(10), &limits(4000)), Fit::Impossible(_)));
        // 10,000 instances fit a default kernel.
        assert_eq!(fit(&shape(10_000), &limits(65_530)), Fit::Fits);
    }

    #[test]
    fn the_address_space_limit_bounds_the_pool() {
        let mut l = limits(1 << 20);
        l.address_space = Some(8 << 30);
        l.address_space_now = 1 << 30;
        match fit(&shape(10_000), &l) {
            Fit::Reduced { instances, why } => {
                assert!(shape(instances).reservation(instances) <= 7 << 30);
                assert!(why.contains("ulimit -v"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
}
