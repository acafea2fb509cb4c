//! autonomic_nif: the thin rustler bridge between the `autonomic_nif` Erlang module and
//! `autonomic_core`. It decodes and validates arguments, maps errors to `{error, Reason}` terms and
//! owns the long-lived state (resources and registries). It holds no logic of its own.
//!
//! Every NIF here returns in well under a millisecond or is marked for a dirty scheduler; none
//! panics on any input (arguments are checked before use, and rustler turns a panic into an
//! Erlang exception as a last resort, never into a VM crash).

mod atoms;
mod governor;
mod kb;
mod ledger;
mod policy;

/// All memory of the library goes through `enif_alloc`, so it shows in `erlang:memory(system)`
/// and in the VM's allocator statistics instead of being invisible to the operator.
#[global_allocator]
static ALLOCATOR: rustler::EnifAllocator = rustler::EnifAllocator;

rustler::init!("autonomic_nif");
