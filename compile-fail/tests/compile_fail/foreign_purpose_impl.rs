// The Purpose trait is sealed: only `purposes!` can implement it.
struct Mine;
impl fieldseal::Purpose for Mine {
    const LABEL: &'static str = "mine";
}

fn main() {}
