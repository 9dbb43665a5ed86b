//! The store limits fit what real guests need, with a wide margin. Counts
//! what instantiating each built component asks for (core instances, defined
//! tables and memories, the largest initial table) and prints it: these are
//! the numbers documented in `src/limits.rs`.

mod support;

use qserve_runtime::guest_limits::{
    POLICY_INSTANCES, POLICY_MEMORIES, POLICY_TABLES, POLICY_TABLE_ELEMENTS,
};
use wasmparser::{Parser, Payload};

#[derive(Debug, Default)]
struct Needs {
    instances: usize,
    tables: usize,
    memories: usize,
    largest_table: u64,
}

/// Core instances a component creates and what their modules define.
/// A module instantiated once is counted once (every guest here does).
fn needs(bytes: &[u8]) -> Needs {
    let mut needs = Needs::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            Payload::InstanceSection(instances) => {
                for instance in instances {
                    if let wasmparser::Instance::Instantiate { .. } = instance.unwrap() {
                        needs.instances += 1;
                    }
                }
            }
            Payload::TableSection(tables) => {
                for table in tables {
                    let table = table.unwrap();
                    needs.tables += 1;
                    needs.largest_table = needs.largest_table.max(table.ty.initial);
                }
            }
            Payload::MemorySection(memories) => needs.memories += memories.count() as usize,
            _ => {}
        }
    }
    needs
}

#[test]
fn real_guests_fit_the_store_limits_with_a_wide_margin() {
    let mut measured = 0;
    for entry in std::fs::read_dir(support::guest_dir()).expect("built guests") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        // The table bomb exists to exceed them.
        if path.extension().is_none_or(|e| e != "wasm") || name == "policy-hostile-table" {
            continue;
        }
        let needs = needs(&std::fs::read(&path).unwrap());
        println!("{name:<28} {needs:?}");
        assert!(needs.instances * 4 <= POLICY_INSTANCES, "{name}: {needs:?}");
        assert!(needs.tables * 4 <= POLICY_TABLES, "{name}: {needs:?}");
        assert!(needs.memories * 4 <= POLICY_MEMORIES, "{name}: {needs:?}");
        assert!(
            needs.largest_table * 10 <= POLICY_TABLE_ELEMENTS as u64,
            "{name}: {needs:?}"
        );
        measured += 1;
    }
    assert!(measured >= 10, "only {measured} guests measured");
}
