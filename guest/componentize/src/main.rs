//! `qserve-componentize --allowed-imports A,B --exports C,D MODULE.wasm OUT.wasm`
//!
//! Used by guest/build.sh: encodes the core module as a component, checks
//! its imports and exports, and writes it (atomically) to OUT.wasm.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use qserve_componentize::{componentize, Surface};

struct Args {
    allowed_imports: BTreeSet<String>,
    exports: BTreeSet<String>,
    module: PathBuf,
    output: PathBuf,
}

const USAGE: &str =
    "usage: qserve-componentize --allowed-imports A,B --exports C,D MODULE.wasm OUT.wasm";

fn name_set(list: &str) -> BTreeSet<String> {
    list.split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args> {
    let (mut allowed_imports, mut exports, mut paths) = (None, None, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--allowed-imports" => allowed_imports = args.next().map(|list| name_set(&list)),
            "--exports" => exports = args.next().map(|list| name_set(&list)),
            flag if flag.starts_with("--") => bail!("unknown option {flag}\n{USAGE}"),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [module, output] = <[PathBuf; 2]>::try_from(paths).map_err(|_| anyhow::anyhow!(USAGE))?;
    Ok(Args {
        allowed_imports: allowed_imports.context(USAGE)?,
        exports: exports.context(USAGE)?,
        module,
        output,
    })
}

fn main() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let module = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    let component = componentize(&module)
        .with_context(|| format!("componentizing {}", args.module.display()))?;
    let surface = Surface::of(&component)?;
    surface
        .check(&args.allowed_imports, &args.exports)
        .with_context(|| format!("checking {}", args.module.display()))?;

    let partial = args.output.with_extension("wasm.partial");
    std::fs::write(&partial, &component)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    // One line for the build log: what the guest may call.
    let imports: Vec<&str> = surface.imports.iter().map(String::as_str).collect();
    println!("imports [{}]", imports.join(", "));
    Ok(())
}
