//! The server address from the command line: `IP PORT` (the seeds' form), `IP:PORT`, `IP`,
//! or nothing (127.0.0.1 6000).

use std::net::SocketAddr;

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 6000;

/// Host and port to connect to, from the positional arguments.
pub fn parse_target(args: &[String]) -> Result<(String, u16), String> {
    let port = |text: &str| {
        text.trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid port {text:?}"))
    };
    match args {
        [] => Ok((DEFAULT_HOST.to_owned(), DEFAULT_PORT)),
        [one] => {
            if let Ok(sa) = one.parse::<SocketAddr>() {
                return Ok((sa.ip().to_string(), sa.port()));
            }
            match one.rsplit_once(':') {
                // A bare IPv6 address has several ':'; only one ':' means host:port.
                Some((host, p)) if !host.contains(':') => {
                    if host.is_empty() {
                        return Err(format!("missing host in {one:?}"));
                    }
                    Ok((host.to_owned(), port(p)?))
                }
                _ => Ok((one.clone(), DEFAULT_PORT)),
            }
        }
        [host, p] => Ok((host.clone(), port(p)?)),
        _ => Err("too many arguments".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Result<(String, u16), String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_target(&args)
    }

    #[test]
    fn forms() {
        assert_eq!(t(&[]), Ok(("127.0.0.1".into(), 6000)));
        assert_eq!(t(&["10.0.0.1", "8000"]), Ok(("10.0.0.1".into(), 8000)));
        assert_eq!(t(&["10.0.0.1:8000"]), Ok(("10.0.0.1".into(), 8000)));
        assert_eq!(t(&["localhost:8000"]), Ok(("localhost".into(), 8000)));
        assert_eq!(t(&["localhost"]), Ok(("localhost".into(), 6000)));
        assert_eq!(t(&["[::1]:7000"]), Ok(("::1".into(), 7000)));
        assert_eq!(t(&["::1"]), Ok(("::1".into(), 6000)));
    }

    #[test]
    fn errors() {
        assert!(t(&["a", "b", "c"]).is_err());
        assert!(t(&["h", "70000"]).is_err());
        assert!(t(&["h:x"]).is_err());
        assert!(t(&[":80"]).is_err());
    }
}
