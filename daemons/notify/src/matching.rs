//! Matching an event against every subscription of its replica. The compiled subscriptions of a
//! replica are kept in memory and reloaded only when the store's revision for that replica
//! changes, so an event costs one revision read plus the evaluation, never a scan of the store.
//!
//! Filters are compiled under the deployment's `[limits]` (a stored one that exceeds them
//! matches nothing), each query is evaluated within its budget, and each distinct filter is
//! evaluated in isolation: one that errs, runs out of budget or panics is reported as a
//! failure of its subscriptions for that event, and every other subscription is matched as usual.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use dss_config::LimitsConfig;
use dss_core::ports::{
    EventKind, Subscription, SubscriptionError, SubscriptionKind, SubscriptionStore,
};
use dss_search::analyze::tokens;
use dss_search::ast::Scalar;
use dss_search::dates::detect;
use dss_search::jmespath_limits::{self, JmespathLimits};
use dss_search::{Budget, Query, QueryLimits, SingleDoc, limits, parse_body};
use jmespath::ast::{Ast, Comparator};
use jmespath::{Expression, Rcvar, Variable};
use serde_json::Value;
use time::OffsetDateTime;

use crate::documents::Target;
use crate::payload::{Attachments, attachments, compile_attachments, truthy, variable};

/// How subscriptions select events.
enum Filter {
    /// An Elasticsearch query over the search document.
    Query(Box<Query>),
    /// A JMESPath expression over the metadata document, with the plan it is evaluated by;
    /// none = every event.
    Jmespath(Option<(Expression<'static>, Ast)>),
    /// A stored query that no longer compiles; matches nothing.
    Invalid,
}

/// A subscription ready to be matched.
pub struct Compiled {
    /// The stored subscription.
    pub sub: Subscription,
    attachments: Option<Attachments>,
}

/// One distinct filter and the subscriptions that use it (many subscribers share filters, and
/// each distinct one is evaluated once per event).
struct Group {
    filter: Filter,
    members: Vec<Arc<Compiled>>,
}

fn compile(sub: &Subscription, limits: &FilterLimits) -> (String, Filter) {
    match sub.kind {
        SubscriptionKind::Elasticsearch => {
            let body = sub.document.get("es_query");
            let key = body.map(Value::to_string).unwrap_or_default();
            let parsed = body
                .map(|b| parse_body(b).and_then(|q| limits::check(&q, &limits.query).map(|()| q)));
            let filter = match parsed {
                Some(Ok(q)) => Filter::Query(Box::new(q)),
                Some(Err(e)) => invalid(sub, &e.to_string()),
                None => invalid(sub, "no es_query"),
            };
            (key, filter)
        }
        SubscriptionKind::Jmespath => {
            match sub.document.get("jmespath_query").and_then(Value::as_str) {
                None | Some("") => (String::new(), Filter::Jmespath(None)),
                Some(q) => {
                    let filter = match jmespath_limits::compile(q, &limits.jmespath) {
                        Ok(e) => {
                            let plan = plan(e.as_ast());
                            Filter::Jmespath(Some((e, plan)))
                        }
                        Err(e) => invalid(sub, &e.to_string()),
                    };
                    (q.to_string(), filter)
                }
            }
        }
    }
}

fn invalid(sub: &Subscription, why: &str) -> Filter {
    tracing::error!(subscription = %sub.uuid, replica = %sub.replica, why, "stored subscription filter does not compile within the limits; it matches nothing");
    Filter::Invalid
}

/// The limits filters are compiled and evaluated under.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilterLimits {
    /// Elasticsearch queries.
    pub query: QueryLimits,
    /// JMESPath filters and attachments.
    pub jmespath: JmespathLimits,
}

impl From<&LimitsConfig> for FilterLimits {
    fn from(c: &LimitsConfig) -> Self {
        Self {
            query: c.query(),
            jmespath: c.jmespath(),
        }
    }
}

/// A subscription that matched, with its attachments when it has any for this event.
pub struct Match {
    /// The subscription.
    pub compiled: Arc<Compiled>,
    /// Its attachments object.
    pub attachments: Option<Value>,
}

/// A subscription whose filter could not be evaluated on the event.
pub struct Failed {
    /// The subscription.
    pub compiled: Arc<Compiled>,
    /// Why.
    pub reason: String,
}

/// What matching one event found.
#[derive(Default)]
pub struct Matched {
    /// The subscriptions that matched.
    pub matches: Vec<Match>,
    /// The subscriptions whose filters failed.
    pub failures: Vec<Failed>,
}

impl Matched {
    fn extend(&mut self, other: Matched) {
        self.matches.extend(other.matches);
        self.failures.extend(other.failures);
    }

    /// Records that every member of `group` failed.
    fn fail(&mut self, group: &Group, reason: String) {
        for c in &group.members {
            self.failures.push(Failed {
                compiled: c.clone(),
                reason: reason.clone(),
            });
        }
    }
}

/// Runs one filter's evaluation, turning a panic into an error of that filter alone.
fn isolated<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        Err(format!("evaluation failed: {what}"))
    })
}

/// Filters evaluated per thread at least; smaller sets are matched on the calling thread.
const PER_THREAD: usize = 1024;

/// Whether `s` compares as a plain keyword (not also as a number or a date).
fn keyword(s: &str) -> bool {
    s.trim().parse::<f64>().is_err() && detect(s).is_none()
}

/// Whether a conjunct's value is always a boolean (or null), so that JMESPath's and Python's
/// truthiness agree on it and it may be evaluated in any position of an `&&` chain.
fn boolean(a: &Ast) -> bool {
    match a {
        Ast::Comparison { .. } | Ast::Not { .. } => true,
        Ast::Function { name, .. } => {
            matches!(name.as_str(), "contains" | "starts_with" | "ends_with")
        }
        _ => false,
    }
}

/// A rough cost of evaluating `a`: its nodes, projections and functions counting more.
fn cost(a: &Ast) -> usize {
    match a {
        Ast::Comparison { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => 1 + cost(lhs) + cost(rhs),
        Ast::Projection { lhs, rhs, .. } => 8 + 4 * (cost(lhs) + cost(rhs)),
        Ast::Condition {
            predicate, then, ..
        } => 4 + 4 * (cost(predicate) + cost(then)),
        Ast::Function { args, .. } => 4 + args.iter().map(cost).sum::<usize>(),
        Ast::Not { node, .. } | Ast::Flatten { node, .. } | Ast::ObjectValues { node, .. } => {
            4 + cost(node)
        }
        Ast::Expref { ast, .. } => 1 + cost(ast),
        Ast::MultiList { elements, .. } => 1 + elements.iter().map(cost).sum::<usize>(),
        Ast::MultiHash { elements, .. } => {
            1 + elements.iter().map(|kv| cost(&kv.value)).sum::<usize>()
        }
        _ => 1,
    }
}

/// The plan an expression is evaluated by: its top-level `&&` chain with boolean conjuncts
/// (comparisons, `!`, `contains`, …) moved first, cheapest first, so that a cheap false test
/// spares the costly ones. The result's truthiness is unchanged: every conjunct but the last
/// must be truthy for JMESPath and the last for Python; the two agree on booleans, so only when
/// every conjunct is boolean may the last one move.
fn plan(a: &Ast) -> Ast {
    let mut all = conjuncts(a);
    if all.len() < 2 {
        return a.clone();
    }
    // The last conjunct's value is the chain's: it stays last unless all are booleans.
    let last = if all.iter().all(|c| boolean(c)) {
        None
    } else {
        all.pop()
    };
    let (mut first, rest): (Vec<&Ast>, Vec<&Ast>) = all.into_iter().partition(|c| boolean(c));
    first.sort_by_key(|c| cost(c));
    first
        .into_iter()
        .chain(rest)
        .chain(last)
        .cloned()
        .reduce(|lhs, rhs| Ast::And {
            offset: 0,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
        .unwrap_or_else(|| a.clone())
}

/// One side of a comparison conjunct.
enum Operand {
    /// A path of the set's path table, evaluated once per event.
    Path(usize),
    /// A literal.
    Literal(Rcvar),
}

/// A conjunct of a planned `&&` chain.
enum Step {
    /// `lhs OP rhs` over paths and literals: compared in place.
    Compare {
        lhs: Operand,
        op: Comparator,
        rhs: Operand,
    },
    /// Anything else, by the interpreter.
    Eval(Ast),
}

/// The paths compared by the set's JMESPath filters, each evaluated at most once per event.
#[derive(Default)]
struct Paths {
    asts: Vec<Ast>,
    index: HashMap<String, usize>,
}

impl Paths {
    fn operand(&mut self, a: &Ast) -> Option<Operand> {
        if let Ast::Literal { value, .. } = a {
            return Some(Operand::Literal(value.clone()));
        }
        let key = path_key(a)?;
        let id = *self.index.entry(key).or_insert_with(|| {
            self.asts.push(a.clone());
            self.asts.len() - 1
        });
        Some(Operand::Path(id))
    }

    /// The steps of a planned chain.
    fn steps(&mut self, plan: &Ast) -> Vec<Step> {
        conjuncts(plan)
            .into_iter()
            .map(|c| match c {
                Ast::Comparison {
                    comparator,
                    lhs,
                    rhs,
                    ..
                } => match (self.operand(lhs), self.operand(rhs)) {
                    (Some(l), Some(r)) => Step::Compare {
                        lhs: l,
                        op: comparator.clone(),
                        rhs: r,
                    },
                    _ => Step::Eval(c.clone()),
                },
                other => Step::Eval(other.clone()),
            })
            .collect()
    }
}

/// Per-event values of the set's paths.
struct Memo<'a> {
    paths: &'a [Ast],
    values: Vec<Option<Rcvar>>,
    data: &'a Rcvar,
}

impl Memo<'_> {
    fn value(&mut self, o: &Operand) -> Rcvar {
        match o {
            Operand::Literal(v) => v.clone(),
            Operand::Path(id) => {
                let (paths, data) = (self.paths, self.data);
                self.values[*id]
                    .get_or_insert_with(|| {
                        let mut ctx = jmespath::Context::new("", &jmespath::DEFAULT_RUNTIME);
                        jmespath::interpret(data, &paths[*id], &mut ctx)
                            .unwrap_or_else(|_| Rcvar::new(Variable::Null))
                    })
                    .clone()
            }
        }
    }
}

/// Whether the chain of `steps` (of `expr`) matches: every conjunct but the last truthy for
/// JMESPath, the last for Python (a comparison is a boolean, on which both agree).
fn run_steps(
    expr: &Expression<'static>,
    steps: &[Step],
    memo: &mut Memo<'_>,
) -> Result<bool, jmespath::JmespathError> {
    let last = steps.len().saturating_sub(1);
    for (i, step) in steps.iter().enumerate() {
        let passed = match step {
            Step::Compare { lhs, op, rhs } => {
                let (a, b) = (memo.value(lhs), memo.value(rhs));
                a.compare(op, &b).unwrap_or(false)
            }
            Step::Eval(ast) => {
                let mut ctx = jmespath::Context::new(expr.as_str(), &jmespath::DEFAULT_RUNTIME);
                let v = jmespath::interpret(memo.data, ast, &mut ctx)?;
                if i < last { v.is_truthy() } else { truthy(&v) }
            }
        };
        if !passed {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A clause every match of a query needs, on one named field: `term`/`terms` or `match`.
/// Returns the field and the values that let a document through, by the field's kind (known
/// only per document): `k:{keyword}` / `K` (any) for a keyword field, `t:{token}` / `T` (any)
/// for an analysed one. A `match` needs the whole value of a keyword field, or one of its tokens
/// in an analysed field (whatever the operator); a `term` the lower-cased keyword, or the value
/// as a token. Values that also compare as numbers or dates are not guarded on keyword fields.
fn query_guard(q: &Query) -> Option<(String, Vec<String>)> {
    let single = |fields: &[String]| {
        (fields.len() == 1 && !fields[0].contains(['*', '?'])).then(|| fields[0].clone())
    };
    let keyword_side = |s: &str| {
        if keyword(s) {
            format!("k:{}", s.to_lowercase())
        } else {
            "K".to_string()
        }
    };
    match q {
        Query::Term { fields, values } => {
            let field = single(fields)?;
            let mut out = Vec::new();
            for v in values {
                match v {
                    Scalar::Str(s) => {
                        out.push(keyword_side(s));
                        out.push(format!("t:{s}"));
                    }
                    _ => out.extend(["K".to_string(), "T".to_string()]),
                }
            }
            Some((field, out))
        }
        Query::Match { fields, text, .. } => {
            let field = single(fields)?;
            let mut out = vec![keyword_side(text)];
            out.extend(tokens(text).into_iter().map(|t| format!("t:{t}")));
            Some((field, out))
        }
        Query::Bool(b) => b.must.iter().find_map(query_guard),
        _ => None,
    }
}

/// The guard values of [`query_guard`] that the document's `field` lets through.
fn query_guard_values(one: &SingleDoc<'_>, field: &str) -> Vec<String> {
    let (any, prefix) = match one.field_is_text(field) {
        None => return Vec::new(),
        Some(false) => ("K", "k:"),
        Some(true) => ("T", "t:"),
    };
    std::iter::once(any.to_string())
        .chain(one.terms(field).map(|t| format!("{prefix}{t}")))
        .collect()
}

/// The text of a path made of fields and indexes (`a.b[0].c`), which evaluates without errors.
fn path_key(a: &Ast) -> Option<String> {
    match a {
        Ast::Field { name, .. } => Some(format!("{name:?}")),
        Ast::Index { idx, .. } => Some(format!("[{idx}]")),
        Ast::Subexpr { lhs, rhs, .. } => Some(format!("{}.{}", path_key(lhs)?, path_key(rhs)?)),
        _ => None,
    }
}

/// A conjunct `path == 'literal'` (string or boolean literal) of an expression's top-level `&&`
/// chain: when it is false, so is the expression (the chain yields a false value). A test of
/// `event_type` is taken only when there is no other (it passes for a third of all events).
fn jmespath_guard(a: &Ast) -> Option<(String, Ast, String)> {
    let mut found: Vec<_> = conjuncts(a).into_iter().filter_map(equality).collect();
    let generic = format!("{:?}", "event_type");
    found
        .iter()
        .position(|(k, _, _)| *k != generic)
        .or((!found.is_empty()).then_some(0))
        .map(|i| found.swap_remove(i))
}

/// The conjuncts of `a`'s top-level `&&` chain, in order (`a` itself when it is no chain).
fn conjuncts(a: &Ast) -> Vec<&Ast> {
    match a {
        Ast::And { lhs, rhs, .. } => {
            let mut out = conjuncts(lhs);
            out.extend(conjuncts(rhs));
            out
        }
        other => vec![other],
    }
}

/// A `path == literal` conjunct (string or boolean literal): its path key, path and literal.
fn equality(a: &Ast) -> Option<(String, Ast, String)> {
    match a {
        Ast::Comparison {
            comparator: Comparator::Equal,
            lhs,
            rhs,
            ..
        } => {
            let (path, literal) = match (&**lhs, &**rhs) {
                (p, Ast::Literal { value, .. }) | (Ast::Literal { value, .. }, p) => (p, value),
                _ => return None,
            };
            if !matches!(&**literal, Variable::String(_) | Variable::Bool(_)) {
                return None;
            }
            let text = serde_json::to_string(&**literal).ok()?;
            Some((path_key(path)?, path.clone(), text))
        }
        _ => None,
    }
}

/// Which groups of one kind an event may match, found without evaluating every filter.
struct Guards<P> {
    /// Groups without a guard: always evaluated.
    open: Vec<usize>,
    /// Per guarded path (or field): the values that let groups through.
    paths: Vec<(P, HashMap<String, Vec<usize>>)>,
    index: HashMap<String, usize>,
}

impl<P> Default for Guards<P> {
    fn default() -> Self {
        Self {
            open: Vec::new(),
            paths: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<P> Guards<P> {
    fn add(&mut self, group: usize, guard: Option<(String, P, Vec<String>)>) {
        let Some((key, path, values)) = guard else {
            self.open.push(group);
            return;
        };
        let i = *self.index.entry(key).or_insert_with(|| {
            self.paths.push((path, HashMap::new()));
            self.paths.len() - 1
        });
        for v in values {
            self.paths[i].1.entry(v).or_default().push(group);
        }
    }

    /// The open groups and those whose guard holds one of the values `found` gives for its
    /// path (computed once per path), in order, once each.
    fn candidates(&self, mut found: impl FnMut(&P) -> Vec<String>) -> Vec<usize> {
        let mut out = self.open.clone();
        for (path, values) in &self.paths {
            for v in found(path) {
                if let Some(groups) = values.get(&v) {
                    out.extend(groups);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The compiled subscriptions of one replica at one revision.
pub struct SubscriptionSet {
    revision: u64,
    /// Work one query evaluation may do.
    query_budget: u64,
    queries: Vec<Group>,
    query_guards: Guards<String>,
    jmespath: Vec<Group>,
    jmespath_guards: Guards<Ast>,
    /// Per JMESPath group, the steps of its planned chain.
    jmespath_steps: Vec<Vec<Step>>,
    paths: Vec<Ast>,
    len: usize,
}

fn group(subs: Vec<(String, Filter, Arc<Compiled>)>) -> Vec<Group> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Group> = Vec::new();
    for (key, filter, c) in subs {
        match index.get(&key) {
            Some(&i) if !matches!(filter, Filter::Invalid) => out[i].members.push(c),
            _ => {
                index.insert(key, out.len());
                out.push(Group {
                    filter,
                    members: vec![c],
                });
            }
        }
    }
    out
}

impl SubscriptionSet {
    /// Compiles `subs`, read at `revision`, under `limits`.
    pub fn new(revision: u64, subs: Vec<Subscription>, limits: &FilterLimits) -> Self {
        let len = subs.len();
        let (mut queries, mut jmespath) = (Vec::new(), Vec::new());
        for sub in subs {
            let (key, filter) = compile(&sub, limits);
            let kind = sub.kind;
            let c = Arc::new(Compiled {
                attachments: compile_attachments(&sub.document, &limits.jmespath),
                sub,
            });
            match kind {
                SubscriptionKind::Elasticsearch => queries.push((key, filter, c)),
                SubscriptionKind::Jmespath => jmespath.push((key, filter, c)),
            }
        }
        let (queries, jmespath) = (group(queries), group(jmespath));
        let mut query_guards = Guards::default();
        for (i, g) in queries.iter().enumerate() {
            let guard = match &g.filter {
                Filter::Query(q) => query_guard(q).map(|(f, v)| (f.clone(), f, v)),
                _ => None,
            };
            query_guards.add(i, guard);
        }
        let mut jmespath_guards = Guards::default();
        for (i, g) in jmespath.iter().enumerate() {
            let guard = match &g.filter {
                Filter::Jmespath(Some((e, _))) => {
                    jmespath_guard(e.as_ast()).map(|(k, p, v)| (k, p, vec![v]))
                }
                _ => None,
            };
            jmespath_guards.add(i, guard);
        }
        let mut paths = Paths::default();
        let jmespath_steps = jmespath
            .iter()
            .map(|g| match &g.filter {
                Filter::Jmespath(Some((_, plan))) => paths.steps(plan),
                _ => Vec::new(),
            })
            .collect();
        Self {
            revision,
            query_budget: limits.query.max_cost,
            queries,
            query_guards,
            jmespath,
            jmespath_guards,
            jmespath_steps,
            paths: paths.asts,
            len,
        }
    }

    /// How many subscriptions it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The subscriptions `target` matches, and those whose filters failed on it. Filters whose
    /// guard the event fails are skipped; the rest are evaluated, split over the machine's
    /// cores when there are many.
    pub fn matches(&self, target: &Target, now: OffsetDateTime) -> Matched {
        let id = format!(
            "{}.{}",
            target.bundle_uuid,
            target.bundle_version.as_deref().unwrap_or_default()
        );
        let search = target
            .search_doc
            .as_ref()
            .filter(|_| !self.queries.is_empty())
            .map(|doc| (doc, SingleDoc::new(&id, doc, now)));
        let metadata = target
            .metadata_doc
            .as_ref()
            .filter(|_| !self.jmespath.is_empty())
            .map(|doc| (doc, variable(doc)));
        let q_cand = search.as_ref().map_or_else(Vec::new, |(_, one)| {
            self.query_guards
                .candidates(|field| query_guard_values(one, field))
        });
        let j_cand = metadata.as_ref().map_or_else(Vec::new, |(_, var)| {
            self.jmespath_guards.candidates(|path| {
                let mut ctx = jmespath::Context::new("", &jmespath::DEFAULT_RUNTIME);
                jmespath::interpret(var, path, &mut ctx)
                    .ok()
                    .filter(|r| matches!(&**r, Variable::String(_) | Variable::Bool(_)))
                    .and_then(|r| serde_json::to_string(&*r).ok())
                    .into_iter()
                    .collect()
            })
        });
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min((q_cand.len() + j_cand.len()) / PER_THREAD)
            .max(1);
        let event = target.event_type;
        let run = |qs: &[usize], js: &[usize], var: Option<&Rcvar>| {
            let mut out = Matched::default();
            if let Some((doc, one)) = &search {
                out.extend(self.match_queries(one, doc, qs));
            }
            if let Some((doc, main_var)) = &metadata {
                let own;
                let var = match var {
                    Some(v) => v,
                    None if js.is_empty() => main_var,
                    // Each thread walks its own copy: shared reference counts would bounce
                    // between the cores.
                    None => {
                        own = variable(doc);
                        &own
                    }
                };
                out.extend(self.match_jmespath(var, event, js));
            }
            out
        };
        if threads == 1 {
            return run(&q_cand, &j_cand, metadata.as_ref().map(|(_, v)| v));
        }
        let q_chunk = q_cand.len().div_ceil(threads).max(1);
        let j_chunk = j_cand.len().div_ceil(threads).max(1);
        let chunk = |c: &[usize], size: usize, t: usize| -> Vec<usize> {
            c.iter().skip(t * size).take(size).copied().collect()
        };
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads)
                .map(|t| {
                    let (qs, js) = (chunk(&q_cand, q_chunk, t), chunk(&j_cand, j_chunk, t));
                    let run = &run;
                    scope.spawn(move || run(&qs, &js, None))
                })
                .collect();
            let mut out = run(
                &chunk(&q_cand, q_chunk, 0),
                &chunk(&j_cand, j_chunk, 0),
                metadata.as_ref().map(|(_, v)| v),
            );
            for h in handles {
                out.extend(h.join().unwrap_or_default());
            }
            out
        })
    }

    fn match_queries(&self, one: &SingleDoc<'_>, doc: &Value, groups: &[usize]) -> Matched {
        let mut out = Matched::default();
        let mut var = None;
        for g in groups.iter().filter_map(|&i| self.queries.get(i)) {
            let Filter::Query(q) = &g.filter else {
                continue;
            };
            let hit = isolated(|| {
                let budget = Budget::new(self.query_budget);
                let hit = one.matches(q, &budget).map_err(|e| e.0)?;
                Ok(hit.then(|| {
                    members(g, |a| {
                        Some(attachments(a, var.get_or_insert_with(|| variable(doc))))
                    })
                }))
            });
            match hit {
                Ok(Some(m)) => out.matches.extend(m),
                Ok(None) => {}
                Err(why) => out.fail(g, why),
            }
        }
        out
    }

    fn match_jmespath(&self, var: &Rcvar, event: EventKind, groups: &[usize]) -> Matched {
        let mut out = Matched::default();
        let mut memo = Memo {
            paths: &self.paths,
            values: vec![None; self.paths.len()],
            data: var,
        };
        for &i in groups {
            let (Some(g), Some(steps)) = (self.jmespath.get(i), self.jmespath_steps.get(i)) else {
                continue;
            };
            let hit = isolated(|| {
                let hit = match &g.filter {
                    Filter::Jmespath(None) => true,
                    Filter::Jmespath(Some((e, _))) => {
                        run_steps(e, steps, &mut memo).map_err(|err| err.to_string())?
                    }
                    _ => false,
                };
                Ok(hit.then(|| {
                    members(g, |a| {
                        (event == EventKind::Create).then(|| attachments(a, var))
                    })
                }))
            });
            match hit {
                Ok(Some(m)) => out.matches.extend(m),
                Ok(None) => {}
                Err(why) => out.fail(g, why),
            }
        }
        out
    }
}

/// A match for every member of a group that matched; `attach` computes the attachments of
/// members that define some (`None`: not for this event).
fn members(group: &Group, mut attach: impl FnMut(&Attachments) -> Option<Value>) -> Vec<Match> {
    group
        .members
        .iter()
        .map(|c| Match {
            compiled: c.clone(),
            attachments: c.attachments.as_ref().and_then(&mut attach),
        })
        .collect()
}

/// The compiled subscriptions of every replica, reloaded when they change.
#[derive(Default)]
pub struct Matcher {
    sets: Mutex<HashMap<String, Arc<SubscriptionSet>>>,
    limits: FilterLimits,
}

impl Matcher {
    /// A matcher compiling filters under `limits`.
    pub fn new(limits: FilterLimits) -> Self {
        Self {
            sets: Mutex::default(),
            limits,
        }
    }

    /// The current subscriptions of `replica`.
    pub async fn set(
        &self,
        store: &dyn SubscriptionStore,
        replica: &str,
    ) -> Result<Arc<SubscriptionSet>, SubscriptionError> {
        let revision = store.revision(replica).await?;
        if let Some(s) = self.cached(replica)
            && s.revision == revision
        {
            return Ok(s);
        }
        let subs = store.list_replica(replica).await?;
        let set = Arc::new(SubscriptionSet::new(revision, subs, &self.limits));
        tracing::info!(
            replica,
            revision,
            subscriptions = set.len(),
            "loaded subscriptions"
        );
        self.sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(replica.to_string(), set.clone());
        Ok(set)
    }

    fn cached(&self, replica: &str) -> Option<Arc<SubscriptionSet>> {
        self.sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(replica)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::search;
    use serde_json::json;

    fn sub(i: usize, kind: SubscriptionKind, filter: Value) -> Subscription {
        let mut doc = json!({"callback_url": "https://example.org/hook"});
        match kind {
            SubscriptionKind::Elasticsearch => doc["es_query"] = filter,
            SubscriptionKind::Jmespath => doc["jmespath_query"] = filter,
        }
        Subscription {
            uuid: format!("s{i:03}"),
            replica: "aws".into(),
            owner: "o@example.org".into(),
            kind,
            document: doc,
        }
    }

    fn target(organ: &str, count: u64, tombstone: bool) -> Target {
        let files = json!({"specimen_json": [{"organ": {"text": organ}, "count": count,
            "date": "2020-01-02T00:00:00Z", "code": "38", "name": "Kidney Atlas"}]});
        Target {
            event_type: if tombstone {
                EventKind::Tombstone
            } else {
                EventKind::Create
            },
            bundle_uuid: "b".into(),
            bundle_version: Some("v".into()),
            event_key: "k".into(),
            search_doc: Some(json!({"files": files, "uuid": "b", "state": "new"})),
            metadata_doc: Some(
                json!({"event_type": if tombstone { "TOMBSTONE" } else { "CREATE" },
                "files": files, "admin_deleted": tombstone}),
            ),
        }
    }

    /// Guards only skip filters that cannot match: the set matches exactly what evaluating
    /// every subscription's filter on its own matches.
    #[test]
    fn guarded_matching_agrees_with_evaluating_every_filter() {
        let es = SubscriptionKind::Elasticsearch;
        let jm = SubscriptionKind::Jmespath;
        let filters = vec![
            (
                es,
                json!({"query": {"term": {"files.specimen_json.organ.text": "Kidney"}}}),
            ),
            (
                es,
                json!({"query": {"terms": {"files.specimen_json.organ.text": ["liver", "lung"]}}}),
            ),
            (
                es,
                json!({"query": {"match": {"files.specimen_json.name": "kidney atlas"}}}),
            ),
            (
                es,
                json!({"query": {"match": {"files.specimen_json.name.text": "atlas"}}}),
            ),
            (
                es,
                json!({"query": {"match": {"files.specimen_json.name": "atlas"}}}),
            ),
            (
                es,
                json!({"query": {"term": {"files.specimen_json.code": "38"}}}),
            ),
            (
                es,
                json!({"query": {"term": {"files.specimen_json.count": 5}}}),
            ),
            (
                es,
                json!({"query": {"term": {"files.specimen_json.date": "2020-01-02"}}}),
            ),
            (
                es,
                json!({"query": {"bool": {"must": [
                {"term": {"files.specimen_json.organ.text": "kidney"}},
                {"range": {"files.specimen_json.count": {"gte": 3}}}]}}}),
            ),
            (
                es,
                json!({"query": {"bool": {"should": [
                {"term": {"files.specimen_json.organ.text": "kidney"}},
                {"term": {"files.specimen_json.organ.text": "liver"}}]}}}),
            ),
            (
                es,
                json!({"query": {"term": {"files.*.organ.text": "kidney"}}}),
            ),
            (es, json!({"query": {"term": {"admin_deleted": true}}})),
            (
                es,
                json!({"query": {"match": {"files.specimen_json.name.text": {"query": "kidney heart", "operator": "and"}}}}),
            ),
            (
                es,
                json!({"query": {"match": {"files.specimen_json.name.text": "liver, atlas!"}}}),
            ),
            (
                es,
                json!({"query": {"match": {"files.specimen_json.organ.text": "KIDNEY"}}}),
            ),
            (
                es,
                json!({"query": {"term": {"files.specimen_json.name.text": "atlas"}}}),
            ),
            (es, json!({"query": {"match": {"files.nothing": "x"}}})),
            (jm, json!("files.specimen_json[0].organ.text == 'kidney'")),
            (
                jm,
                json!("event_type == 'CREATE' && files.specimen_json[0].count > `3`"),
            ),
            (
                jm,
                json!("'liver' == files.specimen_json[0].organ.text && event_type == 'CREATE'"),
            ),
            (jm, json!("admin_deleted == `true`")),
            (jm, json!("files.specimen_json[0].count == `5`")),
            (
                jm,
                json!("files.specimen_json[0].organ.text == 'kidney' || admin_deleted"),
            ),
            (
                jm,
                json!("files.specimen_json[0].organ == `{\"text\": \"kidney\"}`"),
            ),
            (jm, json!("")),
            (
                jm,
                json!(
                    "files.specimen_json[0].count && files.specimen_json[0].organ.text == 'kidney'"
                ),
            ),
            (
                jm,
                json!("files.specimen_json[0].organ.text == 'kidney' && `0`"),
            ),
            (jm, json!("`0` && admin_deleted == `false`")),
            (
                jm,
                json!(
                    "length(files.specimen_json[?count > `4`]) > `0` && contains(files.specimen_json[].organ.text, 'heart')"
                ),
            ),
            (
                jm,
                json!(
                    "!admin_deleted && files.specimen_json[0].count < `6` && files.specimen_json[0].count"
                ),
            ),
            (
                jm,
                json!(
                    "files.specimen_json[0].count >= `5` && files.specimen_json[0].organ.text != 'liver'"
                ),
            ),
            (jm, json!("`3` < files.specimen_json[0].count")),
            (
                jm,
                json!(
                    "files.specimen_json[0].count == files.specimen_json[0].count && event_type == 'CREATE'"
                ),
            ),
            (jm, json!("files.specimen_json[0].organ.text < 'z'")),
        ];
        let subs: Vec<Subscription> = filters
            .iter()
            .enumerate()
            .map(|(i, (k, f))| sub(i, *k, f.clone()))
            .collect();
        let set = SubscriptionSet::new(1, subs.clone(), &FilterLimits::default());
        assert_eq!(set.query_guards.open.len(), 2, "should and a wildcard");
        assert_eq!(
            set.jmespath_guards.open.len(),
            9,
            "number, or, object literal, none, and five without an equality"
        );
        let now = OffsetDateTime::UNIX_EPOCH;
        for t in [
            target("kidney", 5, false),
            target("Liver", 2, false),
            target("lung", 9, true),
            target("heart", 5, true),
        ] {
            let matched = set.matches(&t, now);
            assert!(matched.failures.is_empty());
            let mut got: Vec<String> = matched
                .matches
                .into_iter()
                .map(|m| m.compiled.sub.uuid.clone())
                .collect();
            got.sort();
            let one = SingleDoc::new("b.v", t.search_doc.as_ref().unwrap(), now);
            let var = variable(t.metadata_doc.as_ref().unwrap());
            let want: Vec<String> = subs
                .iter()
                .filter(|s| match s.kind {
                    SubscriptionKind::Elasticsearch => one
                        .matches(
                            &parse_body(&s.document["es_query"]).unwrap(),
                            &Budget::new(u64::MAX),
                        )
                        .unwrap(),
                    SubscriptionKind::Jmespath => match s.document["jmespath_query"].as_str() {
                        Some("") | None => true,
                        Some(q) => truthy(&search(&jmespath::compile(q).unwrap(), &var).unwrap()),
                    },
                })
                .map(|s| s.uuid.clone())
                .collect();
            assert!(!want.is_empty());
            assert_eq!(got, want, "event {:?}", t.metadata_doc);
        }
    }
}

#[cfg(test)]
mod isolation_tests {
    use super::*;
    use serde_json::json;

    fn sub(uuid: &str, kind: SubscriptionKind, key: &str, filter: Value) -> Subscription {
        let mut doc = json!({"callback_url": "https://example.org/hook"});
        doc[key] = filter;
        Subscription {
            uuid: uuid.into(),
            replica: "aws".into(),
            owner: "o@example.org".into(),
            kind,
            document: doc,
        }
    }

    /// A filter that errs or runs out of budget fails alone: every other subscription of the
    /// event is matched as usual, and the failure names its subscription and reason.
    #[test]
    fn a_failing_filter_fails_its_subscription_alone() {
        let es = SubscriptionKind::Elasticsearch;
        let jm = SubscriptionKind::Jmespath;
        let subs = vec![
            sub(
                "good-es",
                es,
                "es_query",
                json!({"query": {"term": {"files.title": "kidney"}}}),
            ),
            // Scans every field name: over the tiny budget below.
            sub(
                "costly-es",
                es,
                "es_query",
                json!({"query": {"term": {"files.*": "kidney"}}}),
            ),
            sub(
                "good-jm",
                jm,
                "jmespath_query",
                json!("files.title == 'kidney'"),
            ),
            // A type error at evaluation.
            sub("erring-jm", jm, "jmespath_query", json!("abs(files) > `1`")),
            // Over the JMESPath limits: refused when compiled, matches nothing, fails nothing.
            sub(
                "doubling-jm",
                jm,
                "jmespath_query",
                json!(vec!["[@,@]"; 30].join("|")),
            ),
        ];
        let limits = FilterLimits {
            query: QueryLimits {
                max_cost: 1,
                ..QueryLimits::default()
            },
            ..FilterLimits::default()
        };
        let set = SubscriptionSet::new(1, subs, &limits);
        let doc = json!({"files": {"title": "kidney", "a": 1, "b": 2}});
        let t = Target {
            event_type: EventKind::Create,
            bundle_uuid: "b".into(),
            bundle_version: Some("v".into()),
            event_key: "k".into(),
            search_doc: Some(doc.clone()),
            metadata_doc: Some(doc),
        };
        let m = set.matches(&t, OffsetDateTime::UNIX_EPOCH);
        let mut matched: Vec<&str> = m
            .matches
            .iter()
            .map(|m| m.compiled.sub.uuid.as_str())
            .collect();
        matched.sort();
        assert_eq!(matched, ["good-es", "good-jm"]);
        let mut failed: Vec<(&str, bool)> = m
            .failures
            .iter()
            .map(|f| (f.compiled.sub.uuid.as_str(), f.reason.is_empty()))
            .collect();
        failed.sort();
        assert_eq!(failed, [("costly-es", false), ("erring-jm", false)]);
    }

    #[test]
    fn a_panic_in_an_evaluation_is_an_error_of_that_evaluation() {
        let r: Result<(), String> = isolated(|| panic!("value out of range"));
        assert_eq!(r, Err("evaluation failed: value out of range".into()));
        assert_eq!(isolated(|| Ok(3)), Ok(3));
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn planned(expr: &str) -> Ast {
        plan(jmespath::compile(expr).expect("compiles").as_ast())
    }

    fn conj(a: &Ast) -> usize {
        match a {
            Ast::And { lhs, rhs, .. } => conj(lhs) + conj(rhs),
            _ => 1,
        }
    }

    #[test]
    fn cheap_boolean_tests_go_first_and_a_non_boolean_last_conjunct_stays_last() {
        // All boolean: cheapest first.
        let p = planned("contains(a[].b, 'x') && c == 'y'");
        let Ast::And { lhs, .. } = &p else {
            panic!("{p:?}")
        };
        assert!(matches!(**lhs, Ast::Comparison { .. }), "{p:?}");
        // A non-boolean last conjunct keeps its place; nothing is lost.
        let p = planned("length(a) > `1` && b == 'x' && c");
        assert_eq!(conj(&p), 3);
        let Ast::And { rhs, .. } = &p else {
            panic!("{p:?}")
        };
        assert!(matches!(**rhs, Ast::Field { .. }), "{p:?}");
        assert_eq!(conj(&planned("a == 'x'")), 1);
    }
}
