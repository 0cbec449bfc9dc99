//! `hello`: the smallest Exodus task app. It greets its unit, echoes its arguments and inputs to
//! `/out/hello.txt`, and exists for instantiation benchmarks and sandbox tests.

fn main() {
    let unit = exo_guest::unit_index();
    let args = exo_guest::args();
    println!("hello from unit {unit}");
    let mut text = format!("unit={unit}\nargs={}\n", args.join(" "));
    // The input listing is sorted by the SDK, so the result does not depend on directory order.
    if let Ok(names) = exo_guest::input_names() {
        for name in names {
            let len = exo_guest::read_input(&name).map(|b| b.len()).unwrap_or(0);
            text.push_str(&format!("input {name} {len}\n"));
        }
    }
    let mut rng = exo_guest::unit_rng();
    text.push_str(&format!("rng={:016x}\n", rng.next_u64()));
    if let Err(e) = exo_guest::write_output("hello.txt", text.as_bytes()) {
        exo_guest::fail(2, &format!("cannot write /out/hello.txt: {e}"));
    }
}
