//! `qserve-componentize --allowed-imports A,B --exports C,D [--wit DIR --world NAME] MODULE OUT.wasm`
//!
//! Used by guest/build.sh: encodes the core module as a component, checks
//! its imports and exports, and writes it (atomically) to OUT.wasm.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use qserve_componentize::{componentize, embed_world, read_module, Surface};

const USAGE: &str = "\
usage: qserve-componentize --allowed-imports A,B --exports C,D [--wit DIR --world NAME] MODULE OUT.wasm

Encodes the core Wasm module MODULE (binary, or WAT text) as a component,
checks it, and writes it to OUT.wasm.

  --allowed-imports A,B  fully qualified interfaces the component may import
                         (e.g. qserve:policy/host@0.2.0); unused ones may be absent
  --exports C,D          the interfaces it must export, exactly
                         (e.g. qserve:policy/decide@0.2.0)
  --wit DIR --world NAME for a hand-written module without wit-bindgen's
                         metadata: embed world NAME of the WIT package in DIR
  -h, --help             print this help

Prints the component's imports on success.";

struct Args {
    allowed_imports: BTreeSet<String>,
    exports: BTreeSet<String>,
    world: Option<(PathBuf, String)>,
    module: PathBuf,
    output: PathBuf,
}

fn name_set(list: &str) -> BTreeSet<String> {
    list.split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `Ok(None)`: help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>> {
    let (mut allowed_imports, mut exports, mut paths) = (None, None, Vec::new());
    let (mut wit, mut world) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--allowed-imports" => allowed_imports = args.next().map(|list| name_set(&list)),
            "--exports" => exports = args.next().map(|list| name_set(&list)),
            "--wit" => wit = args.next().map(PathBuf::from),
            "--world" => world = args.next(),
            flag if flag.starts_with('-') => bail!("unknown option {flag}\n\n{USAGE}"),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [module, output] = <[PathBuf; 2]>::try_from(paths)
        .map_err(|_| anyhow::anyhow!("expected MODULE and OUT.wasm\n\n{USAGE}"))?;
    let world = match (wit, world) {
        (Some(wit), Some(world)) => Some((wit, world)),
        (None, None) => None,
        _ => bail!("--wit and --world go together\n\n{USAGE}"),
    };
    Ok(Some(Args {
        allowed_imports: allowed_imports
            .with_context(|| format!("--allowed-imports is missing\n\n{USAGE}"))?,
        exports: exports.with_context(|| format!("--exports is missing\n\n{USAGE}"))?,
        world,
        module,
        output,
    }))
}

fn main() -> Result<()> {
    let Some(args) = parse_args(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let mut module = read_module(&args.module)?;
    if let Some((wit, world)) = &args.world {
        embed_world(&mut module, wit, world)
            .with_context(|| format!("preparing {}", args.module.display()))?;
    }
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
