// Rebuild when a migration file is added or changed: `sqlx::migrate!` embeds the folder's
// contents at compile time but cannot tell cargo to watch it on stable Rust.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
