//! Unit tests for `download.rs`: URLs, commands, response heads.

use super::*;

#[test]
fn urls_are_https_or_loopback_http() {
    let u = Url::parse("https://updates.example.org/a/b.cbb?x=1").unwrap();
    assert_eq!(
        (u.tls, u.port, u.path.as_str()),
        (true, 443, "/a/b.cbb?x=1")
    );
    assert_eq!(Url::parse("http://127.0.0.1:8080/x").unwrap().port, 8080);
    for bad in [
        "http://example.org/x",
        "ftp://x/y",
        "https://u:p@h/x",
        "https:///x",
        "https://h:0/",
        "https://h/a b",
    ] {
        assert!(Url::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn update_command_requires_a_good_url_and_hash() {
    let ok = br#"{"url":"https://h/x.cbb","sha256":"00000000000000000000000000000000000000000000000000000000000000ff","size":10}"#;
    assert_eq!(UpdateCommand::parse(ok).unwrap().size, Some(10));
    assert!(UpdateCommand::parse(br#"{"url":"https://h/x","sha256":"abc"}"#).is_err());
    assert!(UpdateCommand::parse(br#"{"url":"http://evil/x","sha256":"00"}"#).is_err());
    assert!(UpdateCommand::parse(b"{").is_err());
}

#[test]
fn response_heads_parse_ranges_and_lengths() {
    let h = parse_head(
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-199/200\r\ncontent-length: 100",
    )
    .unwrap();
    assert_eq!(h.status, 206);
    assert_eq!(h.content_range, Some((100, Some(200))));
    assert_eq!(h.content_length, Some(100));
    assert!(parse_head("SSH-2.0 hello").is_err());
    assert!(parse_head("HTTP/1.1 200 OK\r\nContent-Length: x").is_err());
}
