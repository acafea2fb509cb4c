//! Lexical forms of the policy's literals: durations (`xsd:duration` and the seed's shorthand),
//! numbers (`xsd:integer` and its derived types, `xsd:decimal`, `xsd:double`) and booleans.
//!
//! These functions only read text; whether a value is in range for its field is the validator's
//! business (`autonomic_policy_validate` on the Erlang side), not theirs.
//!
//! Durations are converted to milliseconds with exact decimal arithmetic (`PT1.1S` is exactly
//! 1,100 ms, not 1,100.0000000000002): a whole number of milliseconds is a [`Number::Int`], a
//! fraction of a millisecond is a [`Number::Float`] (the validator then refuses it for a field
//! that takes whole milliseconds).

use thiserror::Error;

use super::Number;

/// Milliseconds per day, hour, minute and second.
const DAY_MS: u128 = 86_400_000;
const HOUR_MS: u128 = 3_600_000;
const MINUTE_MS: u128 = 60_000;
const SECOND_MS: u128 = 1_000;
/// Most decimal places accepted in a duration's fraction.
const MAX_FRACTION_DIGITS: usize = 18;

/// Why a literal's text is not a valid value of its type.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LiteralError {
    #[error("not an xsd:duration (such as \"PT30S\" or \"P1DT2H\") nor the shorthand \"30s\", \"500ms\", \"5m\", \"2h\", \"1d\"")]
    Duration,
    #[error("years and months have no fixed length in milliseconds: give days, hours, minutes or seconds")]
    YearsOrMonths,
    #[error("more than {MAX_FRACTION_DIGITS} decimal places")]
    TooPrecise,
    #[error("too large: at most {} ms", i64::MAX)]
    DurationTooLarge,
    #[error("not an integer (digits with an optional sign)")]
    Integer,
    #[error("integer out of range: it must fit in 64 bits")]
    IntegerRange,
    #[error("not an xsd:decimal (digits with an optional sign and decimal point)")]
    Decimal,
    #[error("not an xsd:double")]
    Double,
    #[error("not a finite number")]
    NotFinite,
    #[error("not an xsd:boolean (true, false, 1 or 0)")]
    Boolean,
}

/// XML Schema whitespace collapse for the types here: leading and trailing spaces are ignored.
fn trim(text: &str) -> &str {
    text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A duration in milliseconds, from an `xsd:duration` (`-?PnDTnHnMnS`, only seconds may have a
/// fraction; years and months are refused) or from the seed's shorthand: a decimal number and one
/// unit among `ms`, `s`, `m`, `h`, `d` (`"30s"`, `"1.5h"`).
pub fn duration_ms(text: &str) -> Result<Number, LiteralError> {
    let text = trim(text);
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut acc = Accumulator::default();
    if let Some(iso) = body.strip_prefix('P') {
        iso_duration(iso, &mut acc)?;
    } else if negative {
        // The shorthand has no sign.
        return Err(LiteralError::Duration);
    } else {
        shorthand(body, &mut acc)?;
    }
    acc.finish(negative)
}

/// The sum of a duration's components, exactly: whole milliseconds plus one fraction (only one
/// component may carry a fraction, the last).
#[derive(Default)]
struct Accumulator {
    whole: u128,
    /// Numerator over 10^`scale` of the part below one millisecond.
    rest: u128,
    scale: u32,
}

impl Accumulator {
    /// Adds `int.frac` units of `unit_ms` milliseconds.
    fn add(&mut self, int: &str, frac: &str, unit_ms: u128) -> Result<(), LiteralError> {
        let too_large = || LiteralError::DurationTooLarge;
        // Leading zeros carry no value; what remains must fit (checked below anyway).
        let int_value: u128 = if int.trim_start_matches('0').len() > 30 {
            return Err(too_large());
        } else {
            int.parse::<u128>().map_err(|_| too_large())?
        };
        self.whole = int_value
            .checked_mul(unit_ms)
            .and_then(|v| v.checked_add(self.whole))
            .ok_or_else(too_large)?;
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            if frac.len() > MAX_FRACTION_DIGITS {
                return Err(LiteralError::TooPrecise);
            }
            let digits: u128 = frac.parse().map_err(|_| LiteralError::Duration)?;
            let scale = u32::try_from(frac.len()).map_err(|_| LiteralError::TooPrecise)?;
            let denominator = 10u128.pow(scale);
            // digits < 10^18 and unit_ms < 10^8: the product fits easily.
            let ms = digits * unit_ms;
            self.whole = self
                .whole
                .checked_add(ms / denominator)
                .ok_or_else(too_large)?;
            self.rest = ms % denominator;
            self.scale = scale;
        }
        Ok(())
    }

    fn finish(self, negative: bool) -> Result<Number, LiteralError> {
        let whole = i64::try_from(self.whole).map_err(|_| LiteralError::DurationTooLarge)?;
        let signed = if negative { -whole } else { whole };
        if self.rest == 0 {
            Ok(Number::Int(signed))
        } else {
            // Not a whole number of milliseconds: exactness no longer matters, the validator
            // refuses it wherever whole milliseconds are needed.
            let fraction = self.rest as f64 / 10f64.powi(self.scale as i32);
            let value = whole as f64 + fraction;
            Ok(Number::Float(if negative { -value } else { value }))
        }
    }
}

/// Splits `"12.5"` into `("12", "5")`; `"12"` into `("12", "")`. Both parts must be digits
/// (the integer part non-empty).
fn decimal_parts(number: &str) -> Option<(&str, &str)> {
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) if all_digits(f) => (i, f),
        Some(_) => return None,
        None => (number, ""),
    };
    all_digits(int).then_some((int, frac))
}

/// The part of an `xsd:duration` after `P`.
fn iso_duration(iso: &str, acc: &mut Accumulator) -> Result<(), LiteralError> {
    let bad = || LiteralError::Duration;
    let (date, time) = match iso.split_once('T') {
        Some((d, t)) => {
            // "PT" must be followed by at least one component.
            if t.is_empty() {
                return Err(bad());
            }
            (d, Some(t))
        }
        None => (iso, None),
    };
    if date.is_empty() && time.is_none() {
        return Err(bad());
    }
    // Date part: nY nM nD, in that order, integers only.
    let mut rest = date;
    let mut seen_order = 0u8;
    let mut years_or_months = false;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, tail) = rest.split_at(end);
        let mut chars = tail.chars();
        let designator = chars.next().ok_or_else(bad)?;
        let order = match designator {
            'Y' => 1,
            'M' => 2,
            'D' => 3,
            _ => return Err(bad()),
        };
        if digits.is_empty() || order <= seen_order {
            return Err(bad());
        }
        seen_order = order;
        if order < 3 {
            years_or_months = true;
        } else {
            acc.add(digits, "", DAY_MS)?;
        }
        rest = chars.as_str();
    }
    // Time part: nH nM n(.n)S, in that order; only seconds may have a fraction.
    if let Some(time) = time {
        let mut rest = time;
        let mut seen_order = 0u8;
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let (number, tail) = rest.split_at(end);
            let mut chars = tail.chars();
            let designator = chars.next().ok_or_else(bad)?;
            let (order, unit) = match designator {
                'H' => (1, HOUR_MS),
                'M' => (2, MINUTE_MS),
                'S' => (3, SECOND_MS),
                _ => return Err(bad()),
            };
            if order <= seen_order {
                return Err(bad());
            }
            seen_order = order;
            let (int, frac) = decimal_parts(number).ok_or_else(bad)?;
            if order < 3 && number.contains('.') {
                return Err(bad());
            }
            acc.add(int, frac, unit)?;
            rest = chars.as_str();
        }
    }
    if years_or_months {
        return Err(LiteralError::YearsOrMonths);
    }
    Ok(())
}

/// The seed's shorthand: `<decimal><unit>`, unit among `ms`, `s`, `m`, `h`, `d`.
fn shorthand(text: &str, acc: &mut Accumulator) -> Result<(), LiteralError> {
    let units: [(&str, u128); 5] = [
        ("ms", 1),
        ("s", SECOND_MS),
        ("m", MINUTE_MS),
        ("h", HOUR_MS),
        ("d", DAY_MS),
    ];
    for (suffix, unit) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            // "5ms" also ends in "s": "5m" is not a number, so it falls through to "ms" first.
            if let Some((int, frac)) = decimal_parts(number) {
                return acc.add(int, frac, unit);
            }
        }
    }
    Err(LiteralError::Duration)
}

/// An `xsd:integer` (or a type derived from it): an optional sign and digits.
pub fn integer(text: &str) -> Result<i64, LiteralError> {
    let text = trim(text);
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if !all_digits(digits) {
        return Err(LiteralError::Integer);
    }
    // Rust's parser takes the same form ("+5", "-5", "007").
    text.parse::<i64>().map_err(|_| LiteralError::IntegerRange)
}

/// An `xsd:decimal`: an optional sign, digits and an optional decimal point. A whole value that
/// fits 64 bits is an integer (`"20"` and `"20.0"` are both 20: XML Schema derives integer from
/// decimal), anything else a float (correctly rounded).
pub fn decimal(text: &str) -> Result<Number, LiteralError> {
    let text = trim(text);
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, f),
        None => (unsigned, ""),
    };
    let digits_ok = (int.is_empty() || all_digits(int)) && (frac.is_empty() || all_digits(frac));
    if !digits_ok || (int.is_empty() && frac.is_empty()) {
        return Err(LiteralError::Decimal);
    }
    if frac.bytes().all(|b| b == b'0') {
        let whole = if int.is_empty() { "0" } else { int };
        let sign = if text.starts_with('-') { "-" } else { "" };
        if let Ok(v) = format!("{sign}{whole}").parse::<i64>() {
            return Ok(Number::Int(v));
        }
    }
    let value: f64 = text.parse().map_err(|_| LiteralError::Decimal)?;
    if value.is_finite() {
        Ok(Number::Float(value))
    } else {
        Err(LiteralError::NotFinite)
    }
}

/// An `xsd:double` or `xsd:float`: always a float; `INF` and `NaN` are refused.
pub fn double(text: &str) -> Result<f64, LiteralError> {
    let text = trim(text);
    if matches!(text, "INF" | "+INF" | "-INF" | "NaN") {
        return Err(LiteralError::NotFinite);
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let mantissa_ok = (int.is_empty() || all_digits(int))
        && (frac.is_empty() || all_digits(frac))
        && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.map_or(true, |e| {
        all_digits(e.strip_prefix(['+', '-']).unwrap_or(e))
    });
    if !(mantissa_ok && exponent_ok) {
        return Err(LiteralError::Double);
    }
    let value: f64 = text.parse().map_err(|_| LiteralError::Double)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(LiteralError::NotFinite)
    }
}

/// An `xsd:boolean`: `true`, `false`, `1` or `0`.
pub fn boolean(text: &str) -> Result<bool, LiteralError> {
    match trim(text) {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(LiteralError::Boolean),
    }
}
