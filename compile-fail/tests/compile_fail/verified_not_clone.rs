// A `Verified` proof cannot be copied to outlive its request.
fn copy(p: &fieldseal::Verified) -> fieldseal::Verified {
    p.clone()
}

fn main() {
    let _ = copy;
}
