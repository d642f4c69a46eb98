// A `Verified` proof is made only by `Guard::verify_identity`: application code cannot build one.
fn forge() -> fieldseal::Verified {
    fieldseal::Verified { subject: Default::default(), at: 0, method: "session" }
}

fn main() {
    let _ = forge;
}
