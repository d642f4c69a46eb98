// Revealed plaintext cannot be cloned or serialized.
fn copy(r: &fieldseal::Revealed<fieldseal::Email>) -> fieldseal::Revealed<fieldseal::Email> {
    r.clone()
}

fn main() {}
