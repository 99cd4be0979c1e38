// `sqlx::migrate!` embeds the migration files at compile time; rebuild when
// they change (sqlx's documented recipe).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
