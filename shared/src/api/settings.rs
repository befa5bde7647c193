//! Link settings given through the API, read into the model: sync frequency and conflict
//! policy. Pure functions, tested with tables.

use serde_json::Value;

/// The schedule's tick (`rate(5 minutes)` in `infra/template.yaml`): no link syncs more
/// often on schedule, so shorter frequencies are refused.
pub const MIN_FREQUENCY_SECS: i64 = 300;

/// Seconds between scheduled syncs from `15m`, `hourly`, `daily`, `weekly`, `monthly` (30
/// days), `<n>m` / `<n>h` / `<n>d`, or a number of seconds (JSON number or digits).
///
/// Errors: unknown spelling, or fewer than [`MIN_FREQUENCY_SECS`] seconds.
pub fn frequency_secs(v: &Value) -> Result<i64, String> {
    let secs = match v {
        Value::Number(n) => n.as_i64().ok_or("must be a whole number of seconds")?,
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            let unit = |n: &str, mult: i64| -> Result<i64, String> {
                n.parse::<i64>()
                    .ok()
                    .and_then(|n| n.checked_mul(mult))
                    .ok_or_else(|| format!("{s:?} is not a frequency"))
            };
            match s.as_str() {
                "hourly" => 3600,
                "daily" => 86_400,
                "weekly" => 7 * 86_400,
                "monthly" => 30 * 86_400,
                _ if s.ends_with('m') => unit(&s[..s.len() - 1], 60)?,
                _ if s.ends_with('h') => unit(&s[..s.len() - 1], 3600)?,
                _ if s.ends_with('d') => unit(&s[..s.len() - 1], 86_400)?,
                _ => unit(&s, 1).map_err(|_| {
                    format!("{s:?}: expected 15m, hourly, daily, weekly, monthly or seconds")
                })?,
            }
        }
        _ => return Err("expected a string such as \"hourly\" or a number of seconds".into()),
    };
    if secs < MIN_FREQUENCY_SECS {
        return Err(format!(
            "{secs} s is shorter than the schedule's {MIN_FREQUENCY_SECS} s tick"
        ));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frequencies() {
        let ok = [
            (json!("15m"), 900),
            (json!("hourly"), 3600),
            (json!("Daily"), 86_400),
            (json!("weekly"), 604_800),
            (json!("monthly"), 2_592_000),
            (json!("2h"), 7200),
            (json!("1d"), 86_400),
            (json!(300), 300),
            (json!("3600"), 3600),
        ];
        for (v, want) in ok {
            assert_eq!(frequency_secs(&v), Ok(want), "{v}");
        }
        for bad in [
            json!("4m"),
            json!(60),
            json!("often"),
            json!(true),
            json!(1.5),
            json!("m"),
        ] {
            assert!(frequency_secs(&bad).is_err(), "{bad} accepted");
        }
    }
}
