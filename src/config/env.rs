//! Reading variables: trimmed, empty as unset, parsed with an error naming the variable.

use std::str::FromStr;

use super::ConfigError;

/// Where variables come from: the process environment, or a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A variable's trimmed value; empty counts as unset.
pub(super) fn get(env: Env, var: &str) -> Option<String> {
    env(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A variable parsed as `T`, or `default` when unset.
pub(super) fn parse<T: FromStr>(
    env: Env,
    var: &'static str,
    default: T,
    hint: &'static str,
) -> Result<T, ConfigError> {
    match get(env, var) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|_| ConfigError {
            var,
            problem: format!("cannot use {raw:?}"),
            hint,
        }),
    }
}

/// As `parse`, and greater than zero.
pub(super) fn positive<T: FromStr + PartialOrd + Default>(
    env: Env,
    var: &'static str,
    default: T,
    hint: &'static str,
) -> Result<T, ConfigError> {
    let v = parse(env, var, default, hint)?;
    if v <= T::default() {
        return Err(ConfigError {
            var,
            problem: "must be greater than zero".into(),
            hint,
        });
    }
    Ok(v)
}
