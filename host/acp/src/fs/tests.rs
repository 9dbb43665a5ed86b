use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::Duration;

use super::*;

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Names in `dir` (to prove no temp file is left behind).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- reads ----

#[tokio::test]
async fn reads_a_whole_file() {
    let dir = temp();
    let path = dir.path().join("a.txt");
    std::fs::write(&path, "one\ntwo\n").unwrap();
    assert_eq!(
        read_text_file(&path, None, None).await.unwrap(),
        "one\ntwo\n"
    );
}

#[tokio::test]
async fn line_is_one_based_and_limit_counts_lines() {
    let dir = temp();
    let path = dir.path().join("a.txt");
    std::fs::write(&path, "l1\nl2\nl3\nl4\n").unwrap();
    assert_eq!(
        read_text_file(&path, Some(1), Some(2)).await.unwrap(),
        "l1\nl2"
    );
    assert_eq!(
        read_text_file(&path, Some(3), Some(2)).await.unwrap(),
        "l3\nl4"
    );
    assert_eq!(
        read_text_file(&path, Some(3), None).await.unwrap(),
        "l3\nl4\n"
    );
    assert_eq!(read_text_file(&path, None, Some(1)).await.unwrap(), "l1");
    assert_eq!(read_text_file(&path, Some(99), Some(5)).await.unwrap(), "");
}

#[tokio::test]
async fn line_zero_reads_from_the_start() {
    let dir = temp();
    let path = dir.path().join("a.txt");
    std::fs::write(&path, "l1\nl2\n").unwrap();
    assert_eq!(read_text_file(&path, Some(0), Some(1)).await.unwrap(), "l1");
}

#[tokio::test]
async fn a_partial_read_deep_into_a_long_file() {
    let dir = temp();
    let path = dir.path().join("long.txt");
    let text: String = (1..=200_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        read_text_file(&path, Some(150_000), Some(2)).await.unwrap(),
        "line 150000\nline 150001"
    );
}

#[tokio::test]
async fn limit_zero_is_invalid_params() {
    let dir = temp();
    let path = dir.path().join("a.txt");
    std::fs::write(&path, "x").unwrap();
    let err = read_text_file(&path, Some(1), Some(0)).await.unwrap_err();
    assert!(
        matches!(err, FsError::InvalidParam { param: "limit", .. }),
        "{err}"
    );
    assert_eq!(err.to_rpc_error().code, RpcError::INVALID_PARAMS);
}

#[tokio::test]
async fn relative_paths_are_refused() {
    let err = read_text_file(Path::new("a.txt"), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::NotAbsolute(_)));
    assert_eq!(err.to_rpc_error().code, RpcError::INVALID_PARAMS);
    let err = write_text_file(Path::new("dir/a.txt"), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::NotAbsolute(_)));
}

#[tokio::test]
async fn a_missing_file_is_resource_not_found() {
    let dir = temp();
    let path = dir.path().join("nope.txt");
    let err = read_text_file(&path, None, None).await.unwrap_err();
    assert!(matches!(err, FsError::NotFound(_)));
    let rpc = RpcError::from(err);
    assert_eq!(rpc.code, RpcError::RESOURCE_NOT_FOUND);
    assert!(rpc.message.contains("nope.txt"), "{rpc}");
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = temp();
    let err = read_text_file(dir.path(), None, None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("is a directory, not a regular file"),
        "{err}"
    );
}

#[tokio::test]
async fn a_fifo_is_refused_without_blocking() {
    let dir = temp();
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        read_text_file(&fifo, Some(1), Some(1)),
    )
    .await
    .expect("must not block on the FIFO");
    let err = result.unwrap_err();
    assert!(err.to_string().contains("named pipe (FIFO)"), "{err}");
    assert_eq!(err.to_rpc_error().code, RpcError::INVALID_PARAMS);
}

#[tokio::test]
async fn a_device_is_refused() {
    let err = read_text_file(Path::new("/dev/zero"), Some(1), Some(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("character device"), "{err}");
}

#[tokio::test]
async fn files_over_the_cap_are_refused_even_for_one_line() {
    let dir = temp();
    let path = dir.path().join("huge.log");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_READ_BYTES + 1).unwrap(); // sparse: no real disk use
    for (line, limit) in [(None, None), (Some(1), Some(1))] {
        let err = read_text_file(&path, line, limit).await.unwrap_err();
        assert!(matches!(err, FsError::TooLarge { .. }), "{err}");
    }
}

#[tokio::test]
async fn reads_follow_symlinks_and_tolerate_bad_utf8() {
    let dir = temp();
    let real = dir.path().join("real.txt");
    std::fs::write(&real, b"ok \xff\n").unwrap();
    let link = dir.path().join("link.txt");
    symlink(&real, &link).unwrap();
    assert_eq!(
        read_text_file(&link, None, None).await.unwrap(),
        "ok \u{fffd}\n"
    );
}

// ---- writes ----

#[tokio::test]
async fn writes_a_new_file_and_leaves_no_temp_file() {
    let dir = temp();
    let path = dir.path().join("new.txt");
    write_text_file(&path, "hello\n".into()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
    assert_eq!(entries(dir.path()), ["new.txt"]);
}

#[tokio::test]
async fn creates_missing_parent_directories() {
    let dir = temp();
    let path = dir.path().join("src/deep/mod.rs");
    write_text_file(&path, "x".into()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x");
}

#[tokio::test]
async fn replaces_content_and_keeps_mode_bits() {
    let dir = temp();
    for mode in [0o600, 0o640, 0o755] {
        let path = dir.path().join(format!("f{mode:o}"));
        std::fs::write(&path, "old content that is longer").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        write_text_file(&path, "new".into()).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(got, mode, "mode of {}", path.display());
    }
}

#[tokio::test]
async fn writes_through_a_symlink_and_keeps_the_link() {
    let dir = temp();
    let real = dir.path().join("real.txt");
    std::fs::write(&real, "old").unwrap();
    let link = dir.path().join("link.txt");
    symlink("real.txt", &link).unwrap(); // relative link
    write_text_file(&link, "new".into()).await.unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
    assert_eq!(entries(dir.path()), ["link.txt", "real.txt"]);
}

#[tokio::test]
async fn writes_through_a_chain_of_links_into_another_directory() {
    let dir = temp();
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    let real = dir.path().join("elsewhere/real.txt");
    std::fs::write(&real, "old").unwrap();
    symlink("elsewhere/real.txt", dir.path().join("hop1")).unwrap();
    symlink(dir.path().join("hop1"), dir.path().join("hop2")).unwrap();
    write_text_file(&dir.path().join("hop2"), "new".into())
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
    assert!(std::fs::symlink_metadata(dir.path().join("hop2"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[tokio::test]
async fn writes_through_a_dangling_symlink_by_creating_its_target() {
    let dir = temp();
    let link = dir.path().join("link.txt");
    symlink("target.txt", &link).unwrap();
    write_text_file(&link, "created".into()).await.unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("target.txt")).unwrap(),
        "created"
    );
}

#[tokio::test]
async fn a_symlink_loop_is_an_error() {
    let dir = temp();
    symlink("b", dir.path().join("a")).unwrap();
    symlink("a", dir.path().join("b")).unwrap();
    let err = write_text_file(&dir.path().join("a"), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::SymlinkLoop(_)), "{err}");
}

#[tokio::test]
async fn refuses_to_replace_a_directory_or_a_fifo() {
    let dir = temp();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let err = write_text_file(&sub, "x".into()).await.unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    let err = write_text_file(&fifo, "x".into()).await.unwrap_err();
    assert!(err.to_string().contains("named pipe (FIFO)"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO is untouched"
    );
    assert_eq!(entries(dir.path()), ["pipe", "sub"]);
}

#[tokio::test]
async fn concurrent_writes_never_mix_and_leave_no_temp_files() {
    let dir = temp();
    let path = dir.path().join("shared.txt");
    let contents: Vec<String> = (0..16).map(|i| format!("{i}").repeat(10_000)).collect();
    let writes: Vec<_> = contents
        .iter()
        .map(|c| tokio::spawn(write_text_file_owned(path.clone(), c.clone())))
        .collect();
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let final_content = std::fs::read_to_string(&path).unwrap();
    assert!(
        contents.contains(&final_content),
        "content is one whole write"
    );
    assert_eq!(entries(dir.path()), ["shared.txt"]);
}

async fn write_text_file_owned(path: PathBuf, content: String) -> Result<(), FsError> {
    write_text_file(&path, content).await
}

#[tokio::test]
async fn a_write_into_an_unwritable_directory_fails_cleanly() {
    let dir = temp();
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        eprintln!("SKIPPED a_write_into_an_unwritable_directory_fails_cleanly: root ignores directory permissions");
        return;
    }
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let err = write_text_file(&locked.join("a.txt"), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::PermissionDenied(_)), "{err}");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
}
