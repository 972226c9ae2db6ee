//! [`BrokerUrl`]: the uplink broker's `mqtt://` or `mqtts://` URL, checked
//! when the configuration is validated.

/// A parsed `mqtt://` or `mqtts://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(s: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "{s:?} is not an MQTT URL: use mqtts://host:port (TLS) or mqtt://host:port"
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!(
                "{s:?}: only scheme, host and port are allowed (put credentials in username / password_file)"
            ));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| format!("{s:?}: unterminated [IPv6] host"))?;
            let host = &v6[..end];
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{s:?}: junk after the [IPv6] host")),
            };
            (host.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        let port = match port {
            None => {
                if tls {
                    8883
                } else {
                    1883
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("{s:?}: port {p:?} is not a number from 1 to 65535")),
            },
        };
        Ok(BrokerUrl { tls, host, port })
    }
}

/// `[uplink.mqtt] url`: one broker URL, or a list of them — the nodes of a
/// clustered broker, tried in turn (a DNS name with several addresses
/// counts as several nodes; the uplink resolves it). Written back as a
/// plain string when there is one, so single-broker files keep their form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrls(pub Vec<String>);

impl BrokerUrls {
    /// Every entry parsed, or the first bad one: `(index, reason)`.
    pub fn parse_all(&self) -> Result<Vec<BrokerUrl>, (usize, String)> {
        if self.0.is_empty() {
            return Err((
                0,
                "an empty list: give at least one mqtts:// or mqtt:// URL".into(),
            ));
        }
        let mut out = Vec::with_capacity(self.0.len());
        for (i, s) in self.0.iter().enumerate() {
            let u = BrokerUrl::parse(s).map_err(|e| (i, e))?;
            if let Some(first) = out.first().map(|f: &BrokerUrl| f.tls)
                && first != u.tls
            {
                return Err((
                    i,
                    format!(
                        "{s:?} mixes mqtt:// and mqtts:// in one list: a cluster's nodes use one scheme"
                    ),
                ));
            }
            out.push(u);
        }
        Ok(out)
    }

    /// The entries as written.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for BrokerUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

impl From<&str> for BrokerUrls {
    fn from(s: &str) -> Self {
        BrokerUrls(vec![s.to_string()])
    }
}

impl From<String> for BrokerUrls {
    fn from(s: String) -> Self {
        BrokerUrls(vec![s])
    }
}

impl serde::Serialize for BrokerUrls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => s.collect_seq(many),
        }
    }
}

impl<'de> serde::Deserialize<'de> for BrokerUrls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BrokerUrls;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a broker URL or a list of broker URLs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BrokerUrls, E> {
                Ok(BrokerUrls(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BrokerUrls, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(BrokerUrls(out))
            }
        }
        d.deserialize_any(V)
    }
}
