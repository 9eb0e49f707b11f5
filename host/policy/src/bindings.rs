//! Host-side bindings of the three plugin worlds. The authorizer world generates the
//! shared `types` and `host` interfaces; the other worlds reuse them.

pub(crate) mod authorizer_world {
    wasmtime::component::bindgen!({
        world: "authorizer-plugin",
        path: "../../wit",
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

pub(crate) mod cors_world {
    wasmtime::component::bindgen!({
        world: "cors-plugin",
        path: "../../wit",
        exports: { default: async },
        with: {
            "cairn:policy/types": super::authorizer_world::cairn::policy::types,
            "cairn:policy/host": super::authorizer_world::cairn::policy::host,
        },
    });
}

pub(crate) mod allocator_world {
    wasmtime::component::bindgen!({
        world: "allocator-plugin",
        path: "../../wit",
        exports: { default: async },
        with: {
            "cairn:policy/types": super::authorizer_world::cairn::policy::types,
            "cairn:policy/host": super::authorizer_world::cairn::policy::host,
        },
    });
}

/// The contract's data types (`cairn:policy/types@0.1.0`), as the host sees them.
pub mod types {
    pub use super::authorizer_world::cairn::policy::types::*;
}

pub(crate) use authorizer_world::cairn::policy::host;
