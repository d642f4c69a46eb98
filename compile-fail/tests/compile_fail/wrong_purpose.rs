use fieldseal::builtin::{Marketing, Service};
use fieldseal::*;

fn open(g: &Guard, a: &Accessor, s: &Sealed<Email, Marketing>, c: &Context) {
    let _ = g.reveal::<Email, Service>(a, s, c);
}

fn main() {}
