//! `phoenix crds`: the CustomResourceDefinitions, printed or written one file per kind.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CrdsArgs {
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

pub fn run(args: CrdsArgs) -> ExitCode {
    let Some(dir) = args.out_dir else {
        print!("{}", phoenix_crds::all_crds_yaml());
        return ExitCode::SUCCESS;
    };
    for (file, crd) in phoenix_crds::all_crds() {
        let path = dir.join(file);
        if let Err(err) = std::fs::write(&path, phoenix_crds::crd_yaml(&crd)) {
            eprintln!("phoenix crds: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
