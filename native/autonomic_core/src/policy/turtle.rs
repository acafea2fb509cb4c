//! From a Turtle document to the policy's terms: parse, find the policy node, walk the `res:`
//! statements reachable from it with the tables of [`super::vocab`].

use std::collections::{HashMap, HashSet};

use oxrdf::{Literal, NamedNode, Subject, Term, Triple};
use oxttl::TurtleParser;

use super::literal;
use super::vocab::{self, NodeKind, PropKind, Scalar};
use super::{
    Import, Key, Number, PathElem, Position, Problem, Value, Why, MAX_INPUT_BYTES, MAX_STATEMENTS,
    NAMESPACE, SEED_NAMESPACE,
};

const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const XSD: &str = "http://www.w3.org/2001/XMLSchema#";
/// Longest excerpt of the document shown as a syntax error's value.
const EXCERPT_CHARS: usize = 60;

/// Integer types derived from `xsd:integer`.
const INTEGER_TYPES: [&str; 13] = [
    "integer",
    "long",
    "int",
    "short",
    "byte",
    "nonNegativeInteger",
    "positiveInteger",
    "nonPositiveInteger",
    "negativeInteger",
    "unsignedLong",
    "unsignedInt",
    "unsignedShort",
    "unsignedByte",
];

/// Maps a Turtle document to the policy's terms (see the module documentation of
/// [`super`]). `Err` when nothing can be mapped: the document is too large, has syntax errors
/// (all of them are listed), or has no single policy node. `Ok` carries the terms and every
/// problem found while mapping.
pub fn import_turtle(input: &[u8]) -> Result<Import, Vec<Problem>> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(vec![Problem::new(
            Vec::new(),
            format!("{} bytes", input.len()),
            Why::TooLarge {
                size: input.len(),
                max: MAX_INPUT_BYTES,
            },
        )]);
    }
    let mut triples = Vec::new();
    let mut syntax = Vec::new();
    for result in TurtleParser::new().for_slice(input) {
        match result {
            Ok(triple) => {
                if triples.len() == MAX_STATEMENTS {
                    return Err(vec![Problem::new(
                        Vec::new(),
                        format!("{} bytes", input.len()),
                        Why::TooManyStatements(MAX_STATEMENTS),
                    )]);
                }
                triples.push(triple);
            }
            Err(e) => {
                let location = e.location();
                let excerpt = excerpt(input, location.start.offset, location.end.offset);
                let mut problem =
                    Problem::new(Vec::new(), excerpt, Why::Syntax(e.message().to_owned()));
                problem.position = Some(Position {
                    line: location.start.line + 1,
                    column: location.start.column + 1,
                });
                syntax.push(problem);
            }
        }
    }
    if !syntax.is_empty() {
        return Err(syntax);
    }
    let graph = Graph::new(triples);
    let policy = graph.policy_node()?;
    let mut mapper = Mapper {
        graph: &graph,
        problems: Vec::new(),
        visited: HashSet::new(),
    };
    let mut entries = mapper.node(&policy, &vocab::POLICY, &[]);
    if !entries.iter().any(|(k, _)| k.as_str() == "name") {
        if let Subject::NamedNode(n) = &policy {
            entries.insert(
                0,
                (Key::Field("name"), Value::Text(last_segment(n.as_str()))),
            );
        }
    }
    mapper.unattached();
    Ok(Import {
        policy: Value::Map(entries),
        problems: mapper.problems,
    })
}

/// The bytes of a syntax error's range (at least a few characters), lossily decoded, cut short.
fn excerpt(input: &[u8], start: u64, end: u64) -> String {
    let start = usize::try_from(start)
        .unwrap_or(input.len())
        .min(input.len());
    let end = usize::try_from(end)
        .unwrap_or(input.len())
        .clamp(start, input.len());
    let text = String::from_utf8_lossy(&input[start..end]);
    let text = text.trim_end_matches(['\n', '\r']);
    let mut shown: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        shown.push_str("...");
    }
    shown
}

/// The text after the last `#` or `/` of an IRI (the whole IRI when that is empty).
fn last_segment(iri: &str) -> String {
    let tail = iri.rsplit(['#', '/']).next().unwrap_or(iri);
    if tail.is_empty() {
        iri.to_owned()
    } else {
        tail.to_owned()
    }
}

/// `NodeDown` → `node_down`, `CPUSaturation` → `cpu_saturation`, `node_down` unchanged.
pub(crate) fn snake_case(local: &str) -> String {
    let chars: Vec<char> = local.chars().collect();
    let mut out = String::with_capacity(local.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                // The last capital of a run that starts a new word: "CPUSaturation".
                Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
                Some(_) => false,
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// How a term reads in a problem: `res:X` for the vocabulary, `<iri>`, `[]` for a blank node,
/// literals with their datatype shortened (`"PT3X"^^xsd:duration`).
fn show(term: &Term) -> String {
    match term {
        Term::NamedNode(n) => show_iri(n.as_str()),
        Term::BlankNode(_) => "[]".to_owned(),
        Term::Literal(l) => show_literal(l),
    }
}

fn show_iri(iri: &str) -> String {
    match iri.strip_prefix(NAMESPACE) {
        Some(local) => format!("res:{local}"),
        None => format!("<{iri}>"),
    }
}

fn show_subject(s: &Subject) -> String {
    match s {
        Subject::NamedNode(n) => show_iri(n.as_str()),
        Subject::BlankNode(_) => "[]".to_owned(),
    }
}

fn show_literal(l: &Literal) -> String {
    let quoted = format!("{:?}", l.value());
    if let Some(lang) = l.language() {
        return format!("{quoted}@{lang}");
    }
    let dt = l.datatype().as_str();
    if dt == "http://www.w3.org/2001/XMLSchema#string" {
        quoted
    } else if let Some(x) = dt.strip_prefix(XSD) {
        format!("{quoted}^^xsd:{x}")
    } else {
        format!("{quoted}^^<{dt}>")
    }
}

fn as_subject(term: &Term) -> Option<Subject> {
    match term {
        Term::NamedNode(n) => Some(Subject::NamedNode(n.clone())),
        Term::BlankNode(b) => Some(Subject::BlankNode(b.clone())),
        Term::Literal(_) => None,
    }
}

/// The local name of a `res:` IRI.
fn res_local(n: &NamedNode) -> Option<&str> {
    n.as_str().strip_prefix(NAMESPACE)
}

/// The statements, indexed by subject (each subject's statements in document order).
struct Graph {
    triples: Vec<Triple>,
    by_subject: HashMap<Subject, Vec<usize>>,
}

impl Graph {
    fn new(triples: Vec<Triple>) -> Graph {
        let mut by_subject: HashMap<Subject, Vec<usize>> = HashMap::new();
        for (i, t) in triples.iter().enumerate() {
            by_subject.entry(t.subject.clone()).or_default().push(i);
        }
        Graph {
            triples,
            by_subject,
        }
    }

    fn about(&self, subject: &Subject) -> impl Iterator<Item = &Triple> {
        self.by_subject
            .get(subject)
            .into_iter()
            .flatten()
            .map(|&i| &self.triples[i])
    }

    /// The objects of `subject`'s statements with this full predicate IRI.
    fn objects(&self, subject: &Subject, predicate: &str) -> Vec<&Term> {
        self.about(subject)
            .filter(|t| t.predicate.as_str() == predicate)
            .map(|t| &t.object)
            .collect()
    }

    /// The one node typed `res:ResiliencePolicy`.
    fn policy_node(&self) -> Result<Subject, Vec<Problem>> {
        let rdf_type = format!("{RDF}type");
        let class = format!("{NAMESPACE}{}", vocab::POLICY_CLASS);
        let mut found: Vec<&Subject> = Vec::new();
        for t in &self.triples {
            let typed = t.predicate.as_str() == rdf_type
                && matches!(&t.object, Term::NamedNode(n) if n.as_str() == class);
            if typed && !found.contains(&&t.subject) {
                found.push(&t.subject);
            }
        }
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                let seed_namespace = self.triples.iter().any(|t| {
                    t.predicate.as_str().starts_with(SEED_NAMESPACE)
                        || matches!(&t.object, Term::NamedNode(n) if n.as_str().starts_with(SEED_NAMESPACE))
                });
                Err(vec![Problem::new(
                    Vec::new(),
                    "",
                    Why::NoPolicy { seed_namespace },
                )])
            }
            many => {
                let names: Vec<String> = many.iter().map(|s| show_subject(s)).collect();
                Err(vec![Problem::new(
                    Vec::new(),
                    names.join(" "),
                    Why::SeveralPolicies(many.len()),
                )])
            }
        }
    }
}

struct Mapper<'g> {
    graph: &'g Graph,
    problems: Vec<Problem>,
    /// Nodes the walk reached: their `res:` statements are part of the policy.
    visited: HashSet<Subject>,
}

fn path_with(path: &[PathElem], elem: PathElem) -> Vec<PathElem> {
    let mut p = path.to_vec();
    p.push(elem);
    p
}

impl Mapper<'_> {
    fn problem(&mut self, field: Vec<PathElem>, value: impl Into<String>, why: Why) {
        self.problems.push(Problem::new(field, value, why));
    }

    /// Maps one node of the given kind: its fields, in the order of the kind's table.
    fn node(&mut self, subject: &Subject, kind: &NodeKind, path: &[PathElem]) -> Vec<(Key, Value)> {
        if !self.visited.insert(subject.clone()) {
            // Reached twice (a node shared by two fields, or a cycle): mapped once only.
            return Vec::new();
        }
        let graph = self.graph;
        // res: predicates this kind does not take.
        for t in graph.about(subject) {
            let Some(local) = res_local(&t.predicate) else {
                continue;
            };
            if kind.prop(local).is_some() {
                continue;
            }
            let belongs = vocab::kinds_taking(local);
            let why = if belongs.is_empty() {
                Why::UnknownPredicate {
                    predicate: local.to_owned(),
                    node: kind.name,
                    known: kind.predicate_list(),
                }
            } else {
                Why::Misplaced {
                    predicate: local.to_owned(),
                    node: kind.name,
                    belongs: belongs.join(" or "),
                }
            };
            self.problem(
                path_with(path, PathElem::Raw(local.to_owned())),
                show(&t.object),
                why,
            );
        }
        let mut entries: Vec<(Key, Value)> = Vec::new();
        // Which predicate set each output field, to report two predicates setting one field.
        let mut set_by: Vec<(&'static str, &'static str)> = Vec::new();
        for prop in kind.props {
            let objects = graph.objects(subject, &format!("{NAMESPACE}{}", prop.predicate));
            if objects.is_empty() {
                continue;
            }
            let field = path_with(path, PathElem::Field(prop.key));
            let value = match prop.kind {
                PropKind::Key => continue,
                PropKind::Scalar(scalar) => {
                    let Some(object) = self.single(&field, prop.predicate, &objects) else {
                        continue;
                    };
                    match scalar_value(scalar, object) {
                        Ok(v) => v,
                        Err(why) => {
                            self.problem(field, show(object), why);
                            continue;
                        }
                    }
                }
                PropKind::NameList | PropKind::NameSet => {
                    if objects.len() > 1 {
                        let shown: Vec<String> = objects.iter().map(|o| show(o)).collect();
                        self.problem(field, shown.join(", "), Why::Unordered(prop.predicate));
                        continue;
                    }
                    let Some(names) = self.name_list(&field, objects[0]) else {
                        continue;
                    };
                    if matches!(prop.kind, PropKind::NameSet) {
                        let mut seen: Vec<Key> = Vec::new();
                        let mut map = Vec::new();
                        for name in names {
                            let key = Key::Name(name.clone());
                            if seen.contains(&key) {
                                self.problem(
                                    field.clone(),
                                    show(objects[0]),
                                    Why::DuplicateInList(name),
                                );
                                continue;
                            }
                            seen.push(key.clone());
                            map.push((key, Value::Int(1)));
                        }
                        Value::Map(map)
                    } else {
                        Value::List(names.into_iter().map(Value::Name).collect())
                    }
                }
                PropKind::Section(child) => {
                    let Some(object) = self.single(&field, prop.predicate, &objects) else {
                        continue;
                    };
                    let Some(sub) = as_subject(object) else {
                        self.problem(field, show(object), Why::ExpectedNode);
                        continue;
                    };
                    Value::Map(self.node(&sub, child, &field))
                }
                PropKind::Keyed(child) | PropKind::KeyedValue(child) => {
                    let keyed_value = matches!(prop.kind, PropKind::KeyedValue(_));
                    let mut map: Vec<(Key, Value)> = Vec::new();
                    for &object in &objects {
                        let Some(sub) = as_subject(object) else {
                            self.problem(field.clone(), show(object), Why::ExpectedNode);
                            continue;
                        };
                        let Some(name) = self.key_of(&sub, child, &field) else {
                            // Still walked, so its statements are checked and not reported as
                            // unattached; its fields are dropped.
                            let _ = self.node(
                                &sub,
                                child,
                                &path_with(&field, PathElem::Raw(show_subject(&sub))),
                            );
                            continue;
                        };
                        let child_path = path_with(&field, PathElem::Name(name.clone()));
                        let fields = self.node(&sub, child, &child_path);
                        let key = Key::Name(name.clone());
                        if map.iter().any(|(k, _)| *k == key) {
                            self.problem(
                                child_path,
                                show(object),
                                Why::DuplicateKey {
                                    name,
                                    node: child.name,
                                },
                            );
                            continue;
                        }
                        if keyed_value {
                            match fields.into_iter().find(|(k, _)| k.as_str() == "value") {
                                Some((_, v)) => map.push((key, v)),
                                None => {
                                    // Missing, unless it was there and had a problem already.
                                    let value_predicate = child
                                        .props
                                        .iter()
                                        .find(|p| p.key == "value")
                                        .map_or("value", |p| p.predicate);
                                    let given = self
                                        .graph
                                        .objects(&sub, &format!("{NAMESPACE}{value_predicate}"));
                                    if given.is_empty() {
                                        self.problem(
                                            child_path,
                                            show(object),
                                            Why::MissingKey {
                                                node: child.name,
                                                key: value_predicate,
                                            },
                                        );
                                    }
                                }
                            }
                        } else {
                            map.push((key, Value::Map(fields)));
                        }
                    }
                    Value::Map(map)
                }
            };
            if let Some((_, first)) = set_by.iter().find(|(k, _)| *k == prop.key) {
                let first = *first;
                self.problem(
                    field,
                    show(objects[0]),
                    Why::Conflict(first, prop.predicate),
                );
                continue;
            }
            set_by.push((prop.key, prop.predicate));
            entries.push((Key::Field(prop.key), value));
        }
        entries
    }

    /// The one object of a single-valued predicate, or a problem.
    fn single<'t>(
        &mut self,
        field: &[PathElem],
        predicate: &'static str,
        objects: &[&'t Term],
    ) -> Option<&'t Term> {
        match objects {
            [one] => Some(*one),
            many => {
                let shown: Vec<String> = many.iter().map(|o| show(o)).collect();
                self.problem(
                    field.to_vec(),
                    shown.join(", "),
                    Why::Repeated {
                        predicate,
                        count: many.len(),
                    },
                );
                None
            }
        }
    }

    /// The name a keyed node is filed under (its `res:type`, `res:strategy`, `res:scenario`).
    fn key_of(&mut self, subject: &Subject, kind: &NodeKind, field: &[PathElem]) -> Option<String> {
        let predicate = kind.key_predicate()?;
        let objects = self
            .graph
            .objects(subject, &format!("{NAMESPACE}{predicate}"));
        match objects.as_slice() {
            [] => {
                self.problem(
                    field.to_vec(),
                    show_subject(subject),
                    Why::MissingKey {
                        node: kind.name,
                        key: predicate,
                    },
                );
                None
            }
            [one] => match name_of(one) {
                Some(name) => Some(name),
                None => {
                    self.problem(field.to_vec(), show(one), Why::ExpectedName);
                    None
                }
            },
            many => {
                let shown: Vec<String> = many.iter().map(|o| show(o)).collect();
                self.problem(
                    field.to_vec(),
                    shown.join(", "),
                    Why::Repeated {
                        predicate,
                        count: many.len(),
                    },
                );
                None
            }
        }
    }

    /// One `res:` term, or an RDF list of them.
    fn name_list(&mut self, field: &[PathElem], object: &Term) -> Option<Vec<String>> {
        if let Some(name) = name_of(object) {
            return Some(vec![name]);
        }
        let nil = format!("{RDF}nil");
        let first = format!("{RDF}first");
        let rest = format!("{RDF}rest");
        let mut names = Vec::new();
        let mut cell = object.clone();
        let mut seen: HashSet<Subject> = HashSet::new();
        let mut ok = true;
        loop {
            if matches!(&cell, Term::NamedNode(n) if n.as_str() == nil) {
                break;
            }
            let Some(node) = as_subject(&cell).filter(|s| matches!(s, Subject::BlankNode(_)))
            else {
                self.problem(field.to_vec(), show(object), Why::ExpectedName);
                return None;
            };
            if !seen.insert(node.clone()) {
                self.problem(field.to_vec(), show(object), Why::BadList("it loops"));
                return None;
            }
            let firsts = self.graph.objects(&node, &first);
            let rests = self.graph.objects(&node, &rest);
            if firsts.is_empty() && rests.is_empty() && seen.len() == 1 {
                // A blank node that is no list at all.
                self.problem(field.to_vec(), show(object), Why::ExpectedName);
                return None;
            }
            let (Some(head), Some(tail), 1, 1) =
                (firsts.first(), rests.first(), firsts.len(), rests.len())
            else {
                self.problem(
                    field.to_vec(),
                    show(object),
                    Why::BadList("each cell needs one rdf:first and one rdf:rest"),
                );
                return None;
            };
            match name_of(head) {
                Some(name) => names.push(name),
                None => {
                    self.problem(field.to_vec(), show(head), Why::ExpectedName);
                    ok = false;
                }
            }
            cell = (*tail).clone();
        }
        // An empty list is kept: the validator reports an empty strategy list.
        ok.then_some(names)
    }

    /// Every `res:` statement whose subject the walk did not reach.
    fn unattached(&mut self) {
        let graph = self.graph;
        for t in &graph.triples {
            let Some(local) = res_local(&t.predicate) else {
                continue;
            };
            if self.visited.contains(&t.subject) || is_list_cell(graph, &t.subject) {
                continue;
            }
            self.problem(
                vec![PathElem::Raw(local.to_owned())],
                format!(
                    "{} res:{local} {}",
                    show_subject(&t.subject),
                    show(&t.object)
                ),
                Why::Unattached,
            );
        }
    }
}

/// Whether a node is a cell of an RDF list (its statements are read through the list).
fn is_list_cell(graph: &Graph, subject: &Subject) -> bool {
    let first = format!("{RDF}first");
    graph.about(subject).any(|t| t.predicate.as_str() == first)
}

/// The snake_case name of a `res:` term.
fn name_of(term: &Term) -> Option<String> {
    match term {
        Term::NamedNode(n) => res_local(n).map(snake_case),
        _ => None,
    }
}

/// Reads one scalar object.
fn scalar_value(scalar: Scalar, object: &Term) -> Result<Value, Why> {
    let literal = match object {
        Term::Literal(l) => l,
        Term::NamedNode(n) => {
            return match (scalar, res_local(n)) {
                (Scalar::TextOrIri, _) => Ok(Value::Text(n.as_str().to_owned())),
                (Scalar::Text, _) => Err(Why::ExpectedText),
                (_, Some(local)) => Ok(Value::Name(snake_case(local))),
                (Scalar::Name, None) => Err(Why::ExpectedName),
                (_, None) => Err(Why::ExpectedLiteral(expected(scalar))),
            };
        }
        Term::BlankNode(_) => {
            return Err(match scalar {
                Scalar::Name => Why::ExpectedName,
                Scalar::Text | Scalar::TextOrIri => Why::ExpectedText,
                _ => Why::ExpectedLiteral(expected(scalar)),
            })
        }
    };
    let datatype = literal.datatype().as_str();
    let xsd = datatype.strip_prefix(XSD);
    let is_string = literal.language().is_some() || xsd == Some("string");
    let wrong = || Why::Datatype {
        datatype: show_datatype(datatype),
        expected: expected(scalar),
    };
    let text = literal.value();
    match scalar {
        Scalar::Name => Err(Why::ExpectedName),
        Scalar::Text | Scalar::TextOrIri => {
            if is_string {
                Ok(Value::Text(text.to_owned()))
            } else {
                Err(Why::ExpectedText)
            }
        }
        Scalar::Bool => match xsd {
            Some("boolean") => Ok(Value::Bool(literal::boolean(text)?)),
            _ => Err(wrong()),
        },
        Scalar::Number => match number(xsd, text) {
            Some(n) => n.map(Value::from),
            None => Err(wrong()),
        },
        Scalar::Percent => match number(xsd, text) {
            Some(n) => n.map(Value::Percent),
            None => Err(wrong()),
        },
        Scalar::Duration => match (xsd, number(xsd, text)) {
            (Some("duration" | "dayTimeDuration" | "string"), _) => {
                Ok(Value::from(literal::duration_ms(text)?))
            }
            (_, Some(n)) => n.map(Value::from),
            (_, None) => Err(wrong()),
        },
    }
}

/// A numeric literal: `None` when the datatype is not numeric, else its value or why not.
fn number(xsd: Option<&str>, text: &str) -> Option<Result<Number, Why>> {
    let xsd = xsd?;
    if INTEGER_TYPES.contains(&xsd) {
        Some(literal::integer(text).map(Number::Int).map_err(Why::from))
    } else if xsd == "decimal" {
        Some(literal::decimal(text).map_err(Why::from))
    } else if xsd == "double" || xsd == "float" {
        Some(literal::double(text).map(Number::Float).map_err(Why::from))
    } else {
        None
    }
}

fn show_datatype(datatype: &str) -> String {
    match datatype.strip_prefix(XSD) {
        Some(x) => format!("xsd:{x}"),
        None => format!("<{datatype}>"),
    }
}

fn expected(scalar: Scalar) -> &'static str {
    match scalar {
        Scalar::Duration => {
            "a duration (xsd:duration such as \"PT30S\", \"30s\", or a number of milliseconds)"
        }
        Scalar::Number => "a number",
        Scalar::Percent => "a percentage (a number 0..100)",
        Scalar::Bool => "a boolean (true or false)",
        Scalar::Text | Scalar::TextOrIri => "a string",
        Scalar::Name => "a res: term",
    }
}
