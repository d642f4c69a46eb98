use fieldseal::builtin::Service;
use fieldseal::*;

fn open(g: &Guard, a: &Accessor, s: &Sealed<Email, Service>, c: &Context) -> String {
    let r: Revealed<PhoneNumber> = g.reveal(a, s, c).unwrap();
    r.mask()
}

fn main() {}
