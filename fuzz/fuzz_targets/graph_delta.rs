//! What Microsoft Graph sends the SharePoint connector, as data: delta rounds applied to
//! the item map (renames, moves, deletes, parents in any order or in cycles), the paths
//! of its files, permissions as principals, and the checkpoint's own encoding.
#![no_main]
use std::collections::HashMap;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(rounds) = serde_json::from_slice::<Vec<Vec<serde_json::Value>>>(data) else {
        return;
    };
    let mut items = HashMap::new();
    for round in &rounds {
        tributary_graph_delta::apply(&mut items, round);
        let _ = tributary_graph_delta::file_paths("Docs", &items);
        for it in round {
            let _ = tributary_graph_delta::principals_of(it);
        }
    }
    let saved = serde_json::to_vec(&items).expect("the map encodes");
    let back: HashMap<String, tributary_graph_delta::Known> =
        serde_json::from_slice(&saved).expect("the map decodes");
    assert_eq!(back, items);
});
