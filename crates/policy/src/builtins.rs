//! Builtins a Wasm policy asks its host for (`opa_builtin0..4`).
//!
//! Rego's builtins are implemented by the native interpreter: a call runs
//! the interpreter's own function for the builtin directly, with the
//! argument expressions of a one-rule policy `r := NAME(input[0], ...)`
//! parsed once (they name the arguments in its error messages). The
//! hashes, which the interpreter lacks, are implemented here, and so are the builtins whose result has a size the
//! arguments choose (`numbers.range`, `numbers.range_step`,
//! `net.cidr_expand`): they check it against the memory the evaluation may
//! still use ([`crate::memory::remaining`]) before allocating anything.
//! `regex.match` is implemented here too, on the regex engine and size
//! limit the interpreter uses, with each compiled expression kept and
//! shared: the interpreter hands out a clone of its cached expression per
//! call, which starts the expression's lazy DFA afresh every time.

use std::collections::HashMap;

use serde_json::Value as Json;

/// A builtin the host can run.
#[derive(Clone)]
pub struct HostBuiltin {
    name: String,
    imp: Imp,
}

#[derive(Clone)]
enum Imp {
    Hash(fn(&[u8]) -> String),
    /// The interpreter's function, with the call's place and argument
    /// expressions.
    Direct {
        fcn: regorus::unstable::BuiltinFcn,
        span: regorus::unstable::Span,
        params: Vec<regorus::unstable::Ref<regorus::unstable::Expr>>,
    },
    /// A one-rule policy around an extension of ours (the size-checked
    /// builtins), evaluated by the interpreter.
    Rego(Box<regorus::Engine>),
    /// `regex.match(pattern, value)`.
    RegexMatch,
}

/// What a pattern may compile to at most: the interpreter's limit.
const REGEX_SIZE_LIMIT: usize = 100 * 1024;
/// How many compiled patterns are kept; past it the cache starts afresh.
const REGEX_CACHE_ENTRIES: usize = 256;

/// `pattern` compiled, from the process's cache when it was compiled before.
fn regex(pattern: &str) -> Result<std::sync::Arc<regex::Regex>, String> {
    use std::sync::{Arc, Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(pattern) {
        return Ok(re.clone());
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(Arc::new)
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "regex.match: the pattern compiles past the size limit ({} KiB)",
                REGEX_SIZE_LIMIT / 1024
            ),
            e => format!("regex.match: invalid regex: {}", first_line(&e.to_string())),
        })?;
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= REGEX_CACHE_ENTRIES {
        map.clear();
    }
    map.insert(pattern.to_string(), re.clone());
    Ok(re)
}

impl std::fmt::Debug for HostBuiltin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}
fn sha1(b: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(b))
}
fn md5(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

const HASHES: &[(&str, fn(&[u8]) -> String)] = &[
    ("crypto.sha256", sha256),
    ("crypto.sha1", sha1),
    ("crypto.md5", md5),
];

/// Adds the hash builtins the interpreter lacks (`crypto.sha256`,
/// `crypto.sha1`, `crypto.md5`) to an engine.
pub fn add_hash_extensions(engine: &mut regorus::Engine) -> Result<(), String> {
    for (name, f) in HASHES {
        let f = *f;
        let label = *name;
        engine
            .add_extension(
                name.to_string(),
                1,
                Box::new(move |args: Vec<regorus::Value>| match args.as_slice() {
                    [regorus::Value::String(s)] => Ok(regorus::Value::from(f(s.as_bytes()))),
                    _ => anyhow::bail!("{label}: expected one string argument"),
                }),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Adds the hashes and the size-checked builtins to an engine: what every
/// engine of ours evaluates with.
pub fn add_extensions(engine: &mut regorus::Engine) -> Result<(), String> {
    add_hash_extensions(engine)?;
    add_bounded_builtins(engine)
}

/// Replaces the builtins that make an array as long as their arguments say
/// by versions that first check that it fits in the evaluation's memory.
/// They behave as the interpreter's own (strict builtin errors).
pub fn add_bounded_builtins(engine: &mut regorus::Engine) -> Result<(), String> {
    for (name, nargs) in BOUNDED {
        let f: fn(&[Value]) -> anyhow::Result<Value> = match *name {
            "numbers.range" => |a| range(a, false),
            "numbers.range_step" => |a| range(a, true),
            _ => cidr_expand,
        };
        engine
            .add_extension(
                name.to_string(),
                *nargs,
                Box::new(move |args: Vec<Value>| f(&args)),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

const BOUNDED: &[(&str, u8)] = &[
    ("numbers.range", 2),
    ("numbers.range_step", 3),
    ("net.cidr_expand", 1),
];

use regorus::Value;

/// `numbers.range(a, b)` and `numbers.range_step(a, b, step)`.
fn range(args: &[Value], step: bool) -> anyhow::Result<Value> {
    let name = if step {
        "numbers.range_step"
    } else {
        "numbers.range"
    };
    let number = |v: &Value| match v {
        Value::Number(n) => Ok(n.clone()),
        _ => Err(anyhow::anyhow!(
            "`{name}` expects numeric argument. Got `{v}` instead"
        )),
    };
    let (from, to) = (number(&args[0])?, number(&args[1])?);
    if !from.is_integer() || !to.is_integer() {
        anyhow::bail!("{name}: operand must be integer");
    }
    let incr = if step {
        let incr = number(&args[2])?;
        match incr.as_i64() {
            Some(i) if i > 0 && incr.is_integer() => i,
            _ => anyhow::bail!("{name}: step must be a positive integer"),
        }
    } else {
        1
    };
    let Some(diff) = to.sub(&from)?.as_i64() else {
        anyhow::bail!("{name}: could not determine number of elements");
    };
    let (incr, count) = (
        if diff >= 0 { incr } else { -incr },
        i128::from(diff).abs() / i128::from(incr) + 1,
    );
    let bytes = count as u128 * std::mem::size_of::<Value>() as u128;
    if bytes > u128::from(crate::memory::remaining()) {
        return Err(crate::memory::refuse(
            &format!("{name} of {count} numbers"),
            bytes,
        ));
    }
    let Value::Number(incr) = Value::from(incr) else {
        unreachable!("an integer is a number")
    };
    let mut values = Vec::with_capacity(count as usize);
    let mut v = from;
    for _ in 0..count {
        values.push(Value::from(v.clone()));
        v.add_assign(&incr)?;
    }
    Ok(Value::from(values))
}

/// `net.cidr_expand(cidr)`: every address of the network.
fn cidr_expand(args: &[Value]) -> anyhow::Result<Value> {
    let cidr = match &args[0] {
        Value::String(s) => s.clone(),
        v => anyhow::bail!("`cidr_expand` expects string argument. Got `{v}` instead"),
    };
    let net = cidr
        .parse::<ipnet::IpNet>()
        .map_err(|e| anyhow::anyhow!("Error parsing {cidr}: {e}"))?;
    // Each address is a value and a shared string (header and text).
    let (bits, per_address) = match net {
        ipnet::IpNet::V4(_) => (32, 24 + 48),
        ipnet::IpNet::V6(_) => (128, 24 + 64),
    };
    let host_bits = u32::from(bits - net.prefix_len());
    let count = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
    let bytes = count.saturating_mul(per_address);
    if bytes > u128::from(crate::memory::remaining()) {
        return Err(crate::memory::refuse(
            &format!("net.cidr_expand of {cidr}"),
            bytes,
        ));
    }
    let mut hosts: Vec<Value> = Vec::with_capacity(count as usize);
    for host in net.hosts() {
        hosts.push(Value::String(host.to_string().into()));
    }
    // As the interpreter (and OPA) do: an IPv4 network shorter than /31
    // includes its network and broadcast addresses.
    if matches!(net, ipnet::IpNet::V4(_) if net.prefix_len() < 31) {
        hosts.push(Value::String(net.broadcast().to_string().into()));
        hosts.insert(0, Value::String(net.network().to_string().into()));
    }
    Ok(Value::from(hosts))
}

/// Whether the host provides the builtin `name`.
pub fn is_supported(name: &str) -> bool {
    HASHES.iter().any(|(n, _)| *n == name) || regorus::unstable::BUILTINS.contains_key(name)
}

impl HostBuiltin {
    /// The builtin `name`, or an error naming it when the host lacks it.
    pub fn new(name: &str) -> Result<HostBuiltin, String> {
        if name == "regex.match" {
            return Ok(HostBuiltin {
                name: name.to_string(),
                imp: Imp::RegexMatch,
            });
        }
        if let Some((_, f)) = HASHES.iter().find(|(n, _)| *n == name) {
            return Ok(HostBuiltin {
                name: name.to_string(),
                imp: Imp::Hash(*f),
            });
        }
        let Some((_, nargs)) = regorus::unstable::BUILTINS.get(name) else {
            return Err(format!(
                "the policy needs the builtin `{name}`, which this host does not provide"
            ));
        };
        let args = (0..*nargs)
            .map(|i| format!("input[{i}]"))
            .collect::<Vec<_>>()
            .join(", ");
        let rule = format!("package builtin\nr := {name}({args})\n");
        if !BOUNDED.iter().any(|(n, _)| *n == name) {
            let fcn = *regorus::unstable::BUILTINS
                .get(name)
                .expect("looked up above");
            let (span, params) = call_of(&rule).map_err(|e| format!("builtin `{name}`: {e}"))?;
            return Ok(HostBuiltin {
                name: name.to_string(),
                imp: Imp::Direct { fcn, span, params },
            });
        }
        let mut engine = regorus::Engine::new();
        engine.set_strict_builtin_errors(true);
        add_bounded_builtins(&mut engine)?;
        engine
            .add_policy("builtin.rego".into(), rule)
            .map_err(|e| format!("builtin `{name}`: {e}"))?;
        Ok(HostBuiltin {
            name: name.to_string(),
            imp: Imp::Rego(Box::new(engine)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls the builtin. `Ok(None)` is an undefined result.
    pub fn call(&self, args: &[Json]) -> Result<Option<Json>, String> {
        match &self.imp {
            Imp::Hash(f) => match args {
                [Json::String(s)] => Ok(Some(Json::String(f(s.as_bytes())))),
                _ => Err(format!("{}: expected one string argument", self.name)),
            },
            Imp::RegexMatch => match args {
                [Json::String(pattern), Json::String(value)] => {
                    Ok(Some(Json::Bool(regex(pattern)?.is_match(value))))
                }
                _ => Err("regex.match: expected two string arguments".to_string()),
            },
            Imp::Direct { fcn, span, params } => {
                let args: Vec<regorus::Value> = args
                    .iter()
                    .map(|a| regorus::Value::from(a.clone()))
                    .collect();
                // Strict: a builtin's error is an error, as with OPA's
                // host builtins, not an undefined result.
                self.result((fcn.0)(span, params, &args, true))
            }
            Imp::Rego(engine) => {
                let mut engine = (**engine).clone();
                engine.set_input(regorus::Value::from(Json::Array(args.to_vec())));
                self.result(engine.eval_rule("data.builtin.r".into()))
            }
        }
    }

    /// The interpreter's answer as the call's: undefined, a JSON value, or
    /// an error named after the builtin.
    fn result(&self, v: anyhow::Result<regorus::Value>) -> Result<Option<Json>, String> {
        let v = v.map_err(|e| format!("{}: {}", self.name, first_line(&e.to_string())))?;
        if v == regorus::Value::Undefined {
            return Ok(None);
        }
        serde_json::to_value(&v)
            .map(Some)
            .map_err(|e| format!("{}: {e}", self.name))
    }
}

/// The place and argument expressions of the call in `rule`, a one-rule
/// policy `r := NAME(...)`.
#[allow(clippy::type_complexity)]
fn call_of(
    rule: &str,
) -> Result<
    (
        regorus::unstable::Span,
        Vec<regorus::unstable::Ref<regorus::unstable::Expr>>,
    ),
    String,
> {
    use regorus::unstable::{Expr, Parser, Rule, RuleHead};
    let source = regorus::Source::from_contents("builtin.rego".into(), rule.to_string())
        .map_err(|e| e.to_string())?;
    let mut parser = Parser::new(&source).map_err(|e| e.to_string())?;
    parser.enable_rego_v1().map_err(|e| e.to_string())?;
    let module = parser.parse().map_err(|e| e.to_string())?;
    if let Some(Rule::Spec {
        head: RuleHead::Compr {
            assign: Some(assign),
            ..
        },
        ..
    }) = module.policy.first().map(|r| r.as_ref())
    {
        if let Expr::Call { span, params, .. } = assign.value.as_ref() {
            return Ok((span.clone(), params.clone()));
        }
    }
    Err("not a call".into())
}

fn first_line(s: &str) -> String {
    // The interpreter's errors carry the one-rule source; keep the message.
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// The host builtins for a module's `builtins()` map (name → id).
pub fn resolve(map: &HashMap<String, i32>) -> Result<HashMap<i32, HostBuiltin>, String> {
    let mut missing = Vec::new();
    let mut out = HashMap::new();
    let mut names: Vec<_> = map.iter().collect();
    names.sort();
    for (name, id) in names {
        match HostBuiltin::new(name) {
            Ok(b) => {
                out.insert(*id, b);
            }
            Err(_) => missing.push(name.clone()),
        }
    }
    match missing.len() {
        0 => Ok(out),
        1 => Err(format!(
            "the policy needs the builtin `{}`, which this host does not provide",
            missing[0]
        )),
        _ => Err(format!(
            "the policy needs builtins this host does not provide: {}",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn useful_set_is_provided() {
        let cases: &[(&str, Json, Json)] = &[
            ("sprintf", json!(["%s-%d", ["a", 3]]), json!("a-3")),
            ("regex.match", json!(["^a+b$", "aaab"]), json!(true)),
            (
                "glob.match",
                json!(["*.example.com", ["."], "api.example.com"]),
                json!(true),
            ),
            ("json.marshal", json!([{"a": 1}]), json!("{\"a\":1}")),
            ("json.unmarshal", json!(["[1,2]"]), json!([1, 2])),
            ("yaml.unmarshal", json!(["a: 1\n"]), json!({"a": 1})),
            ("base64.encode", json!(["hi"]), json!("aGk=")),
            ("base64.decode", json!(["aGk="]), json!("hi")),
            ("semver.compare", json!(["1.2.3", "1.10.0"]), json!(-1)),
            (
                "crypto.sha256",
                json!(["abc"]),
                json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ),
            (
                "crypto.md5",
                json!(["abc"]),
                json!("900150983cd24fb0d6963f7d28e17f72"),
            ),
            (
                "crypto.sha1",
                json!(["abc"]),
                json!("a9993e364706816aba3e25717850c26c9cd0d89d"),
            ),
        ];
        for (name, args, want) in cases {
            let b = HostBuiltin::new(name).unwrap();
            let got = b.call(args.as_array().unwrap()).unwrap();
            assert_eq!(got.as_ref(), Some(want), "{name}");
        }
        let now = HostBuiltin::new("time.now_ns")
            .unwrap()
            .call(&[])
            .unwrap()
            .unwrap();
        assert!(now.as_i64().unwrap() > 1_600_000_000_000_000_000);
        let yaml = HostBuiltin::new("yaml.marshal")
            .unwrap()
            .call(&[json!({"a": 1})])
            .unwrap()
            .unwrap();
        assert!(yaml.as_str().unwrap().contains("a: 1"));
    }

    #[test]
    fn every_interpreter_builtin_is_called_directly_and_the_bounded_ones_checked() {
        for name in regorus::unstable::BUILTINS.keys() {
            let b = HostBuiltin::new(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let direct = matches!(b.imp, Imp::Direct { .. });
            let own = BOUNDED.iter().any(|(n, _)| n == name) || *name == "regex.match";
            assert_eq!(direct, !own, "{name}");
        }
        // An argument of the wrong type is an error naming the builtin.
        let err = HostBuiltin::new("regex.match")
            .unwrap()
            .call(&[json!(1), json!("a")])
            .unwrap_err();
        assert!(err.starts_with("regex.match:"), "{err}");
        let range = HostBuiltin::new("numbers.range")
            .unwrap()
            .call(&[json!(1), json!(3)])
            .unwrap();
        assert_eq!(range, Some(json!([1, 2, 3])));
    }

    /// regex.match answers as the interpreter's does, from the cache too,
    /// and refuses what it refuses.
    #[test]
    fn regex_match_agrees_with_the_interpreter() {
        let cases = [
            ("^a+b$", "aaab"),
            ("^a+b$", "aaabc"),
            (
                "@[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+",
                "nginx@sha256:abc",
            ),
            ("^[0-9]+(\\.[0-9]+)?$", "1.5"),
            ("^[0-9]+(\\.[0-9]+)?$", "1.5G"),
            ("(?i)^NGINX", "nginx:1"),
            ("\\p{Greek}+", "αβγ"),
            ("", "anything"),
        ];
        let ours = HostBuiltin::new("regex.match").unwrap();
        let mut engine = regorus::Engine::new();
        engine
            .add_policy(
                "m.rego".into(),
                "package m\nr := regex.match(input[0], input[1])\n".into(),
            )
            .unwrap();
        for _ in 0..2 {
            for (p, v) in cases {
                engine.set_input(regorus::Value::from(json!([p, v])));
                let want =
                    serde_json::to_value(engine.eval_rule("data.m.r".into()).unwrap()).unwrap();
                assert_eq!(
                    ours.call(&[json!(p), json!(v)]).unwrap(),
                    Some(want),
                    "{p} on {v}"
                );
            }
        }
        let err = ours.call(&[json!("(["), json!("a")]).unwrap_err();
        assert!(err.starts_with("regex.match: invalid regex"), "{err}");
        let err = ours
            .call(&[json!("\\w{1000}{1000}"), json!("a")])
            .unwrap_err();
        assert!(err.contains("size limit"), "{err}");
    }

    #[test]
    fn missing_builtin_is_named() {
        let map = HashMap::from([
            ("no.such_builtin".to_string(), 0),
            ("sprintf".to_string(), 1),
        ]);
        let err = resolve(&map).unwrap_err();
        assert!(err.contains("`no.such_builtin`"), "{err}");
    }

    #[test]
    fn builtin_errors_are_reported() {
        let err = HostBuiltin::new("json.unmarshal")
            .unwrap()
            .call(&[json!("{nope")])
            .unwrap_err();
        assert!(err.starts_with("json.unmarshal:"), "{err}");
    }
}
