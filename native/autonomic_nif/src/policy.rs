//! NIF of the resilience policy's Turtle import: decodes the document, calls
//! `autonomic_core::policy::import_turtle` and encodes its result as terms. No logic here.
//!
//! `policy_from_turtle(Binary)` answers `{ok, Terms, Problems}` (the policy's terms, for the
//! Erlang validator, and the problems found while mapping) or `{error, Problems}` (nothing could
//! be mapped: too large, syntax errors, no single policy node). A problem is
//! `#{field => [atom() | binary()], value => binary(), why => binary()}`, with `line` and
//! `column` for syntax errors. Names from the document become atoms only when the atom exists
//! already (the validator's module holds every name it knows), else binaries: a document can
//! never create atoms.
//!
//! It runs on a dirty CPU scheduler: a document may be up to 1 MiB
//! (`autonomic_core::policy::MAX_INPUT_BYTES`, checked by the import), which takes milliseconds.

use autonomic_core::policy::{import_turtle, Key, Number, PathElem, Problem, Value};
use rustler::{Atom, Binary, Encoder, Env, Term};

mod atoms {
    rustler::atoms! {
        ok,
        error,
        percent,
        field,
        value,
        why,
        line,
        column,
    }
}

/// `policy_from_turtle(Document :: binary())`.
#[rustler::nif(schedule = "DirtyCpu")]
fn policy_from_turtle<'a>(env: Env<'a>, document: Term<'a>) -> Term<'a> {
    let Ok(bin) = document.decode::<Binary>() else {
        let problem = map(
            env,
            vec![
                (atoms::field().encode(env), Vec::<Term>::new().encode(env)),
                (atoms::value().encode(env), document),
                (
                    atoms::why().encode(env),
                    "a Turtle document is a binary".encode(env),
                ),
            ],
        );
        return (atoms::error(), vec![problem]).encode(env);
    };
    match import_turtle(bin.as_slice()) {
        Ok(import) => (
            atoms::ok(),
            encode_value(env, &import.policy),
            encode_problems(env, &import.problems),
        )
            .encode(env),
        Err(problems) => (atoms::error(), encode_problems(env, &problems)).encode(env),
    }
}

/// A map from key-value pairs (later keys replace earlier ones; the import never repeats one).
fn map<'a>(env: Env<'a>, pairs: Vec<(Term<'a>, Term<'a>)>) -> Term<'a> {
    let mut m = Term::map_new(env);
    for (k, v) in pairs {
        // map_put fails only when `m` is not a map, and it always is.
        if let Ok(next) = m.map_put(k, v) {
            m = next;
        }
    }
    m
}

/// A name: the existing atom with this text, else a binary.
fn name<'a>(env: Env<'a>, text: &str) -> Term<'a> {
    match Atom::existing_from_str(env, text) {
        Ok(atom) => atom.encode(env),
        Err(_) => text.encode(env),
    }
}

/// A field of the policy: an atom (the vocabulary is fixed and small).
fn field<'a>(env: Env<'a>, key: &'static str) -> Term<'a> {
    match Atom::from_str(env, key) {
        Ok(atom) => atom.encode(env),
        Err(_) => key.encode(env),
    }
}

fn encode_number<'a>(env: Env<'a>, n: Number) -> Term<'a> {
    match n {
        Number::Int(i) => i.encode(env),
        Number::Float(f) => f.encode(env),
    }
}

fn encode_value<'a>(env: Env<'a>, v: &Value) -> Term<'a> {
    match v {
        Value::Int(i) => i.encode(env),
        Value::Float(f) => f.encode(env),
        Value::Bool(b) => b.encode(env),
        Value::Text(t) => t.encode(env),
        Value::Name(n) => name(env, n),
        Value::Percent(n) => (atoms::percent(), encode_number(env, *n)).encode(env),
        Value::List(items) => items
            .iter()
            .map(|i| encode_value(env, i))
            .collect::<Vec<Term>>()
            .encode(env),
        Value::Map(entries) => {
            let pairs = entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::Field(f) => field(env, f),
                        Key::Name(n) => name(env, n),
                    };
                    (key, encode_value(env, v))
                })
                .collect();
            map(env, pairs)
        }
    }
}

fn encode_problems<'a>(env: Env<'a>, problems: &[Problem]) -> Term<'a> {
    problems
        .iter()
        .map(|p| encode_problem(env, p))
        .collect::<Vec<Term>>()
        .encode(env)
}

fn encode_problem<'a>(env: Env<'a>, p: &Problem) -> Term<'a> {
    let path: Vec<Term> = p
        .field
        .iter()
        .map(|e| match e {
            PathElem::Field(f) => field(env, f),
            PathElem::Name(n) => name(env, n),
            PathElem::Raw(r) => r.encode(env),
        })
        .collect();
    let mut pairs = vec![
        (atoms::field().encode(env), path.encode(env)),
        (atoms::value().encode(env), p.value.encode(env)),
        (atoms::why().encode(env), p.why.to_string().encode(env)),
    ];
    if let Some(pos) = p.position {
        pairs.push((atoms::line().encode(env), pos.line.encode(env)));
        pairs.push((atoms::column().encode(env), pos.column.encode(env)));
    }
    map(env, pairs)
}
