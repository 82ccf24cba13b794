//! JMESPath expressions of subscriptions (filters and attachments), compiled under limits so
//! that no stored expression can take a notify daemon's time or memory from other subscribers.
//!
//! JMESPath has no loops, so the work of an evaluation is bounded by the expression's shape:
//! every node's output is at most its input times what the nodes before it multiplied it by
//! (multi-select lists and hashes add up their branches; pipes and projections multiply). The
//! cost of an expression is that bound summed over its nodes, in multiples of the document's
//! size. `[@, @] | [@, @] | …` doubles with each pipe and is refused when it is stored, long
//! before it could describe an exponentially large value.

use jmespath::Expression;
use jmespath::ast::Ast;

/// Limits on one expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JmespathLimits {
    /// Bytes of the expression.
    pub max_length: usize,
    /// Levels of its syntax tree.
    pub max_depth: usize,
    /// Its worst-case work, in multiples of the document's size.
    pub max_cost: u64,
}

impl Default for JmespathLimits {
    fn default() -> Self {
        Self {
            max_length: 10_000,
            max_depth: 128,
            max_cost: 1_000,
        }
    }
}

/// The deepest syntax tree the limits may allow: the evaluator recurses once per level, and
/// 2 MiB thread stacks hold about 200 levels in an unoptimised build (thousands in a release).
pub const DEEPEST: usize = 160;

/// Why an expression is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// Longer than allowed.
    #[error("the expression is {len} bytes long, more than the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid JMESPath.
    #[error("{0}")]
    Syntax(String),
    /// Nested deeper than allowed.
    #[error("the expression is nested {depth} levels deep, more than the limit of {max}")]
    TooDeep {
        /// Its depth.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// Its worst-case work is more than allowed.
    #[error(
        "the expression may cost {cost} times the document's size to evaluate, more than the limit of {max} (multi-select lists and hashes multiply what pipes and projections after them work on)"
    )]
    TooCostly {
        /// Its cost.
        cost: u64,
        /// The limit.
        max: u64,
    },
}

/// Characters that open a nested construct in the parser (brackets, `!`, `&`, `*`); an
/// expression with more of these than this is parsed on a thread with a large stack.
const INLINE_NESTING: usize = 64;

/// Stack of the thread that parses heavily nested expressions.
const PARSER_STACK: usize = 64 << 20;

/// Compiles `expr` if it is within `limits`.
pub fn compile(
    expr: &str,
    limits: &JmespathLimits,
) -> Result<Expression<'static>, ExpressionError> {
    if expr.len() > limits.max_length {
        return Err(ExpressionError::TooLong {
            len: expr.len(),
            max: limits.max_length,
        });
    }
    let nesting = expr
        .bytes()
        .filter(|b| matches!(b, b'(' | b'[' | b'{' | b'!' | b'&' | b'*'))
        .count();
    // The parser recurses once per nested construct: a long expression made of them is parsed
    // (and, if refused, dropped) where the stack has room for it.
    let checked = || {
        let e = jmespath::compile(expr).map_err(|e| ExpressionError::Syntax(e.to_string()))?;
        check(e.as_ast(), limits)?;
        Ok(e)
    };
    if nesting <= INLINE_NESTING {
        return checked();
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("jmespath-parse".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(s, checked)
            .map_err(|e| ExpressionError::Syntax(format!("cannot parse: {e}")))?
            .join()
            .unwrap_or_else(|_| Err(ExpressionError::Syntax("the parser failed".into())))
    })
}

/// Checks a parsed expression's depth and cost.
pub fn check(ast: &Ast, limits: &JmespathLimits) -> Result<(), ExpressionError> {
    let depth = depth(ast);
    if depth > limits.max_depth {
        return Err(ExpressionError::TooDeep {
            depth,
            max: limits.max_depth,
        });
    }
    let cost = cost(ast, 1).work;
    if cost > limits.max_cost {
        return Err(ExpressionError::TooCostly {
            cost,
            max: limits.max_cost,
        });
    }
    Ok(())
}

/// The children of a node.
fn children(a: &Ast) -> Vec<&Ast> {
    match a {
        Ast::Comparison { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. } => vec![lhs, rhs],
        Ast::Condition {
            predicate, then, ..
        } => vec![predicate, then],
        Ast::Expref { ast: node, .. }
        | Ast::Flatten { node, .. }
        | Ast::Not { node, .. }
        | Ast::ObjectValues { node, .. } => vec![node],
        Ast::Function { args, .. } | Ast::MultiList { elements: args, .. } => args.iter().collect(),
        Ast::MultiHash { elements, .. } => elements.iter().map(|kv| &kv.value).collect(),
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => Vec::new(),
    }
}

/// Levels of the tree, counted without recursion (a refused tree may be thousands deep).
pub fn depth(ast: &Ast) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(ast, 1usize)];
    while let Some((node, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(children(node).into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

/// The bound of one node: the work it and its children do, and the size of its output, both
/// in multiples of the document's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    work: u64,
    out: u64,
}

/// The bound of evaluating `a` on an input of `input` times the document's size.
fn cost(a: &Ast, input: u64) -> Bound {
    let leaf = |out: u64| Bound { work: out, out };
    match a {
        Ast::Identity { .. } | Ast::Field { .. } | Ast::Index { .. } | Ast::Slice { .. } => {
            leaf(input)
        }
        Ast::Literal { .. } => leaf(1),
        Ast::Flatten { node, .. } | Ast::ObjectValues { node, .. } => {
            let n = cost(node, input);
            Bound {
                work: n.work.saturating_add(n.out),
                out: n.out,
            }
        }
        Ast::Subexpr { lhs, rhs, .. } | Ast::Projection { lhs, rhs, .. } => {
            let l = cost(lhs, input);
            let r = cost(rhs, l.out);
            Bound {
                work: l.work.saturating_add(r.work),
                out: r.out,
            }
        }
        Ast::MultiList { elements, .. } => sum(elements.iter(), input),
        Ast::MultiHash { elements, .. } => sum(elements.iter().map(|kv| &kv.value), input),
        Ast::Comparison { lhs, rhs, .. } => {
            let (l, r) = (cost(lhs, input), cost(rhs, input));
            Bound {
                work: l
                    .work
                    .saturating_add(r.work)
                    .saturating_add(l.out)
                    .saturating_add(r.out),
                out: 1,
            }
        }
        Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            let (l, r) = (cost(lhs, input), cost(rhs, input));
            Bound {
                work: l.work.saturating_add(r.work),
                out: l.out.max(r.out),
            }
        }
        Ast::Not { node, .. } => Bound {
            work: cost(node, input).work,
            out: 1,
        },
        Ast::Condition {
            predicate, then, ..
        } => {
            let (p, t) = (cost(predicate, input), cost(then, input));
            Bound {
                work: p.work.saturating_add(t.work),
                out: t.out,
            }
        }
        Ast::Expref { ast, .. } => cost(ast, input),
        Ast::Function { args, .. } => {
            // Expression arguments (`map`, `sort_by`, `max_by`, …) run on the elements of the
            // other arguments.
            let values = sum(
                args.iter().filter(|x| !matches!(x, Ast::Expref { .. })),
                input,
            );
            let mut b = Bound {
                work: values.work.saturating_add(values.out),
                out: values.out,
            };
            for e in args.iter().filter(|x| matches!(x, Ast::Expref { .. })) {
                let per = cost(e, values.out.max(1));
                b.work = b.work.saturating_add(per.work).saturating_add(per.out);
                b.out = b.out.max(per.out);
            }
            b
        }
    }
}

/// Branches evaluated on the same input, their outputs collected.
fn sum<'a>(branches: impl Iterator<Item = &'a Ast>, input: u64) -> Bound {
    let mut b = Bound { work: 0, out: 0 };
    for x in branches {
        let c = cost(x, input);
        b.work = b.work.saturating_add(c.work);
        b.out = b.out.saturating_add(c.out);
    }
    Bound {
        work: b.work.saturating_add(b.out),
        out: b.out.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(expr: &str) -> u64 {
        let e = compile(expr, &JmespathLimits::default()).unwrap_or_else(|e| panic!("{expr}: {e}"));
        cost(e.as_ast(), 1).work
    }

    #[test]
    fn ordinary_filters_and_attachments_are_cheap() {
        for expr in [
            "event_type == 'CREATE' && files.project_json[0].title == 'Kidney'",
            "files.donor_organism_json[].biomaterial_core.biomaterial_id",
            "length(files.specimen_json[?count > `4`]) > `0` && contains(files.specimen_json[].organ.text, 'heart')",
            "sort_by(files.project_json, &title)[0].title",
            "{a: files.a, b: files.b}",
        ] {
            assert!(ok(expr) < 60, "{expr}: {}", ok(expr));
        }
        // A long chain of alternatives (machine-made filters) stays within the limits.
        let chain: Vec<String> = (0..100)
            .map(|i| format!("files.project_json[0].uuid == 'p{i}'"))
            .collect();
        ok(&chain.join(" || "));
    }

    #[test]
    fn values_that_multiply_are_refused_when_compiled() {
        let doubling = vec!["[@, @]"; 40].join(" | ");
        let e = compile(&doubling, &JmespathLimits::default()).unwrap_err();
        assert!(
            matches!(e, ExpressionError::TooCostly { .. }),
            "{doubling}: {e}"
        );
        // The same through projections and functions.
        for expr in [
            "[@,@,@,@][*].[@,@,@,@][*].[@,@,@,@][*].[@,@,@,@][*].[@,@,@,@][*]",
            "to_string([@,@,@,@,@,@,@,@] | [@,@,@,@,@,@,@,@] | [@,@,@,@,@,@,@,@] | [@,@,@,@])",
            "map(&[@,@,@,@,@,@,@,@], [@,@,@,@,@,@,@,@] | [@,@,@,@,@,@,@,@][])",
        ] {
            assert!(
                matches!(
                    compile(expr, &JmespathLimits::default()),
                    Err(ExpressionError::TooCostly { .. })
                ),
                "{expr}"
            );
        }
    }

    #[test]
    fn long_deep_and_malformed_expressions_are_refused() {
        let limits = JmespathLimits::default();
        let long = format!("a == '{}'", "x".repeat(20_000));
        assert!(matches!(
            compile(&long, &limits),
            Err(ExpressionError::TooLong { .. })
        ));
        // Deeply nested brackets and negations parse on a large stack and are refused;
        // parentheses leave no trace in the tree.
        let parens = format!("{}a{}", "(".repeat(3000), ")".repeat(3000));
        assert_eq!(
            depth(compile(&parens, &limits).expect("parens").as_ast()),
            1
        );
        for deep in [
            format!("{}a", "!".repeat(5000)),
            format!("{}a{}", "[".repeat(3000), "]".repeat(3000)),
            vec!["a"; 5000].join("."),
            vec!["a"; 5000].join("|"),
            vec!["a"; 2500].join("||"),
        ] {
            match compile(&deep, &limits) {
                Err(ExpressionError::TooDeep { .. } | ExpressionError::Syntax(_)) => {}
                other => panic!("{}: {:?}", &deep[..20], other.map(|_| ())),
            }
        }
        assert!(matches!(
            compile("a ==", &limits),
            Err(ExpressionError::Syntax(_))
        ));
    }

    #[test]
    fn the_deepest_expressions_allowed_evaluate_on_an_ordinary_thread_stack() {
        let limits = JmespathLimits {
            max_depth: DEEPEST,
            max_length: 100_000,
            max_cost: 100_000,
        };
        let exprs = [
            format!("{}a", "!".repeat(DEEPEST - 2)),
            vec!["a == 'x'"; DEEPEST / 2 - 1].join(" || "),
            vec!["b"; DEEPEST - 1].join("."),
        ];
        for e in &exprs {
            let compiled = compile(e, &limits).expect("within the limits");
            // Tokio's blocking and worker threads have 2 MiB stacks.
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || {
                    let data = jmespath::Variable::from_json("{\"a\": 1, \"b\": {}}").unwrap();
                    compiled.search(data).map(|_| ())
                })
                .unwrap()
                .join()
                .expect("no stack overflow")
                .expect("evaluates");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// JMESPath text from its grammar (fields, indexes, slices, pipes, projections, filters,
    /// multi-selects, functions, literals), or any text.
    fn expr() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            prop::sample::select(&["a", "b", "files", "@", "`1`", "'x'", "`[1,2]`", "*"][..])
                .prop_map(str::to_string),
            any::<String>(),
        ];
        leaf.prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}.{b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} | {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[*].{b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[?{b}]")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} == {b}")),
                prop::collection::vec(inner.clone(), 1..4)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                prop::collection::vec(inner.clone(), 1..3).prop_map(|v| {
                    let kv: Vec<String> = v
                        .iter()
                        .enumerate()
                        .map(|(i, e)| format!("k{i}: {e}"))
                        .collect();
                    format!("{{{}}}", kv.join(", "))
                }),
                inner.clone().prop_map(|a| format!("{a}[]")),
                inner.clone().prop_map(|a| format!("{a}[1:3]")),
                inner.clone().prop_map(|a| format!("!{a}")),
                inner.clone().prop_map(|a| format!("to_string({a})")),
                inner.clone().prop_map(|a| format!("length({a})")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("map(&{a}, {b})")),
            ]
        })
    }

    /// Whether a value is or holds an expression reference.
    fn holds_expref(v: &jmespath::Variable) -> bool {
        match v {
            jmespath::Variable::Expref(_) => true,
            jmespath::Variable::Array(items) => items.iter().any(|i| holds_expref(i)),
            jmespath::Variable::Object(map) => map.values().any(|i| holds_expref(i)),
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// Nothing panics while compiling any text, and what compiles evaluates to a value no
        /// larger than its cost bound says (in multiples of the document's size, plus the
        /// expression's own literals).
        #[test]
        fn accepted_expressions_stay_within_their_bound(e in expr()) {
            let limits = JmespathLimits::default();
            let Ok(compiled) = compile(&e, &limits) else { return Ok(()) };
            let doc = serde_json::json!({"a": [1, 2, {"b": "x"}], "b": "y", "files": {"a": [3]}});
            let data = jmespath::Variable::from_json(&doc.to_string()).expect("document");
            let bound = cost(compiled.as_ast(), 1).out.max(1);
            // An expression reference (`&a`) evaluates to its own syntax tree, not to data,
            // also inside a list or hash (`{k0: a.&b}`).
            if let Some(v) = compiled.search(data).ok().filter(|v| !holds_expref(v)) {
                let size = serde_json::to_string(&*v).map_or(0, |s| s.len());
                let limit = bound as usize * (doc.to_string().len() + e.len()) * 2;
                prop_assert!(size <= limit, "{e}: {size} bytes, bound {bound}");
            }
        }
    }
}
