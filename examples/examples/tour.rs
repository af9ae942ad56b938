//! A walk through the toolkit. Placeholder until the segment section lands.
fn main() {
    ipc_core::init();
}
