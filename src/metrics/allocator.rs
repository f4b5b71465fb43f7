//! The allocator's own account of the heap, beside the process's RSS. When RSS rises, these
//! tell the two causes apart: `allocated` rising means objects are accumulating (thread-cached
//! ones count too); `resident` rising alone means the allocator is keeping freed pages.

/// Appends the allocator's gauges in the text format.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
pub fn render(out: &mut String) {
    use std::fmt::Write;
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; advancing the epoch refreshes them.
    if let Err(e) = epoch::advance() {
        log::debug!("metrics: jemalloc epoch: {e}");
        return;
    }
    let families = [
        (
            "switchboard_memory_allocated_bytes",
            "Bytes jemalloc has handed out, thread-cached objects included (stats.allocated).",
            stats::allocated::read(),
        ),
        (
            "switchboard_memory_active_bytes",
            "Bytes in pages that hold live allocations (jemalloc stats.active).",
            stats::active::read(),
        ),
        (
            "switchboard_memory_resident_bytes",
            "Upper bound on the allocator's pages in physical memory, freed ones not yet returned included (jemalloc stats.resident).",
            stats::resident::read(),
        ),
    ];
    for (name, help, value) in families {
        match value {
            Ok(v) => {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                let _ = writeln!(out, "{name} {v}");
            }
            Err(e) => log::debug!("metrics: {name}: {e}"),
        }
    }
}

/// Without jemalloc the system allocator gives no cheap account: nothing is appended.
#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
pub fn render(_out: &mut String) {}
