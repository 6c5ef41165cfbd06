//! Random schemas, data, predicates, writes and queries. Value domains are
//! small so that predicates hit; values absent from the data are mixed in so
//! that they must match nothing.
//!
//! Events are dated within [`FIRST_DAY`, `LAST_DAY`] (2026-07-01 to
//! 2026-10-31), each EVENTS column on a few days of that range so that
//! windows and `ON AT LEAST` hit; queries on tables with EVENTS columns say
//! `AS OF` a day inside, before or after those days. Writes are bound with
//! the clock (long after the range), so their predicates only use windows
//! that do not depend on it ([`Pred::clock_free`]).

use super::model::{
    iso8601, quote, Assign, Column, IdentStyle, Lit, Op, Pred, Range, Schema, Target, Ty, Write,
    NO_EXPIRY_DAYS,
};
use super::query::{Agg, AsOf, Func, GItem, Order, OrderKey, OverlapItem, Query, Stmt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Constructs the generator can be told to leave out while an engine bug is
/// open (all on: no open bug needs one).
#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub int_extremes: bool,
}

const TEXTS: &[&str] = &[
    "a",
    "b",
    "NL",
    "x y",
    "it's",
    "B",
    "ab",
    "",
    "back\\slash",
    "é",
    "line\nbreak\t",
    "semi; -- not a comment",
    "(NOT",
    "😀",
    "Z",
];
const ABSENT_TEXTS: &[&str] = &["zz", "A", "nope", "a ", "'"];
const TAGS: &[&str] = &[
    "a",
    "b",
    "c",
    "NL",
    "x y",
    "it's",
    "]",
    "new\nline",
    "",
    "😀",
];
const ABSENT_TAGS: &[&str] = &["q", "zz", "A"];
/// Event values: a colon inside a value is allowed (the tag is `day:value`).
const EVENT_VALUES: &[&str] = &["baking", "golf", "tea", "x:y", "it's", ""];
/// Prefixes, suffixes and other spellings of event values: they match nothing.
const ABSENT_EVENT_VALUES: &[&str] = &["zz", "x", "y", "bak", "Golf", "x:", "2026-07-01:golf"];
/// 2026-07-01 and 2026-10-31 (UTC days since 1970-01-01): the days of the
/// generated events.
pub const FIRST_DAY: i64 = 20_635;
pub const LAST_DAY: i64 = 20_757;
const DAY: i64 = 86_400;
const INT_EXTREMES: &[i64] = &[i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX];
/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200;
/// 9999-12-31T23:59:59Z and 0001-01-01T00:00:00Z: the ISO-8601 range with 4-digit years.
const TS_MAX_ISO: i64 = 253_402_300_799;
const TS_MIN_ISO: i64 = -62_135_596_800;
const FLOAT_CENTS: &[i64] = &[-150, -25, 0, 25, 150, 275, 1000, 1234, 99_999];

/// Per-column value domain.
#[derive(Debug, Clone)]
enum Domain {
    Texts(Vec<String>),
    Ints(Vec<i64>),
    Cents(Vec<i64>),
    Bools,
    /// EVENTS<TEXT>: the values and the days events fall on.
    Events {
        values: Vec<String>,
        days: Vec<i64>,
    },
}

pub struct Gen {
    pub rng: StdRng,
    pub schema: Schema,
    domains: Vec<Domain>,
    /// Ids used in writes and key predicates.
    ids: Vec<String>,
    /// Int / timestamp extremes in the data (then SUM may overflow, which the model expects).
    extremes: bool,
    /// A large table, loaded by [`Gen::bulk_load`].
    pub big: bool,
    /// Generating a write: predicates must not depend on the clock.
    clock_free: bool,
    /// The today the predicates being generated will likely be evaluated
    /// at, so that `WITHIN n DAYS` windows end near the events' days.
    today: Option<i64>,
}

/// The share of seeds with a large table.
const BIG_TABLES: f64 = 0.06;

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

fn subset<T: Clone>(rng: &mut StdRng, xs: &[T], min: usize, max: usize) -> Vec<T> {
    let mut v: Vec<T> = xs.to_vec();
    shuffle(rng, &mut v);
    v.truncate(rng.random_range(min..=max.min(xs.len()).max(min)));
    v
}

fn shuffle<T>(rng: &mut StdRng, xs: &mut [T]) {
    for i in (1..xs.len()).rev() {
        xs.swap(i, rng.random_range(0..=i));
    }
}

impl Gen {
    pub fn new(seed: u64, features: Features) -> Gen {
        let mut rng = StdRng::seed_from_u64(seed);
        // Some tables are large (bitmap containers, big overlays over parts).
        let big = rng.random_bool(BIG_TABLES);
        let id_space = if big {
            rng.random_range(2000..6000)
        } else {
            *pick(&mut rng, &[4usize, 12, 30, 80])
        };
        let mut ids: Vec<String> = (0..id_space).map(|i| format!("u{i}")).collect();
        if rng.random_bool(0.3) {
            ids.push("o'k".into());
        }
        let extremes = features.int_extremes && rng.random_bool(0.3);
        let mut gen = Gen {
            rng,
            schema: Schema {
                table: "t".into(),
                key: "id".into(),
                columns: Vec::new(),
                style: IdentStyle::Plain,
                segments: Default::default(),
                retention: None,
                consent: None,
                min_audience: None,
            },
            big,
            clock_free: false,
            today: None,
            domains: Vec::new(),
            ids,
            extremes,
        };
        gen.new_schema();
        gen
    }

    /// Picks a new random schema (1-6 columns of random types, spelled in a
    /// random identifier style) and value domains for it.
    pub fn new_schema(&mut self) {
        let rng = &mut self.rng;
        let n = rng.random_range(1..=6);
        let mut columns = Vec::new();
        let mut domains = Vec::new();
        for i in 0..n {
            let ty = *pick(rng, &Ty::ALL);
            columns.push(Column {
                name: format!("c{i}"),
                ty,
            });
            let wide = rng.random_bool(0.08);
            domains.push(match ty {
                Ty::Text | Ty::Set if wide => Domain::Texts(
                    (0..rng.random_range(50..300))
                        .map(|v| format!("v{v}"))
                        .collect(),
                ),
                Ty::Text => Domain::Texts(
                    subset(rng, TEXTS, 2, 5)
                        .into_iter()
                        .map(String::from)
                        .chain(rng.random_bool(0.05).then(|| "x".repeat(1000)))
                        .collect(),
                ),
                Ty::Set => Domain::Texts(
                    subset(rng, TAGS, 2, 5)
                        .into_iter()
                        .map(String::from)
                        .collect(),
                ),
                Ty::Int => Domain::Ints(match rng.random_range(0..4) {
                    0 => (-3..=3).collect(),
                    1 => subset(rng, &[-100, -7, -1, 0, 1, 2, 42, 99, 1000], 3, 6),
                    2 => (0..4).map(|_| rng.random_range(-50..=50)).collect(),
                    _ => (0..6)
                        .map(|_| rng.random_range(-1_000_000_000_000i64..1_000_000_000_000))
                        .collect(),
                }),
                Ty::Ts => Domain::Ints(subset(
                    rng,
                    &[
                        T0,
                        T0 + 3600,
                        T0 + 86_400,
                        T0 - 86_400,
                        T0 + 59,
                        T0 - 1,
                        0,
                        -86_400,
                        1_000_000_000,
                        TS_MAX_ISO,
                        TS_MIN_ISO,
                    ],
                    3,
                    6,
                )),
                Ty::Float => Domain::Cents(subset(rng, FLOAT_CENTS, 3, 6)),
                Ty::Bool => Domain::Bools,
                Ty::Events => {
                    let values = subset(rng, EVENT_VALUES, 3, 5)
                        .into_iter()
                        .map(String::from)
                        .collect();
                    let days = match rng.random_range(0..10) {
                        // A cluster of close days.
                        0..=4 => {
                            let start = rng.random_range(FIRST_DAY..=LAST_DAY - 14);
                            (0..rng.random_range(3..=10))
                                .map(|_| start + rng.random_range(0..15))
                                .collect()
                        }
                        // A few days anywhere in the range.
                        5..=7 => (0..rng.random_range(4..=15))
                            .map(|_| rng.random_range(FIRST_DAY..=LAST_DAY))
                            .collect(),
                        // Every day of the range.
                        _ => (FIRST_DAY..=LAST_DAY).collect(),
                    };
                    Domain::Events { values, days }
                }
            });
        }
        let events = columns.iter().any(|c| c.ty == Ty::Events);
        let any_days = rng.random_range(1..=150);
        let retention = match rng.random_range(0..100) {
            0..=24 if events => Some(*pick(rng, &[1, 2, 3, 7, 14, 30, 60, 90, 120, any_days])),
            25..=29 => Some(NO_EXPIRY_DAYS + rng.random_range(0..10)),
            _ => None,
        };
        let style = *pick(
            rng,
            &[
                IdentStyle::Plain,
                IdentStyle::Plain,
                IdentStyle::Plain,
                IdentStyle::Upper,
                IdentStyle::Quoted,
            ],
        );
        // Some tables keep consent in one of their SET<TEXT> columns, and
        // some suppress small counts for analysts.
        let sets: Vec<usize> = (0..columns.len())
            .filter(|c| columns[*c].ty == Ty::Set)
            .collect();
        let consent = (!sets.is_empty() && rng.random_bool(0.4)).then(|| *pick(rng, &sets));
        let min_audience = rng
            .random_bool(0.35)
            .then(|| *pick(rng, &[1, 2, 2, 3, 3, 4, 5]));
        self.schema.columns = columns;
        self.schema.style = style;
        self.schema.retention = retention;
        self.schema.consent = consent;
        self.schema.min_audience = min_audience;
        self.schema.segments.clear();
        self.domains = domains;
    }

    pub fn create_sql(&mut self) -> String {
        let mut cols = vec![format!("{} TEXT PRIMARY KEY", self.schema.key)];
        for c in &self.schema.columns {
            let names: &[&str] = match c.ty {
                Ty::Text => &["TEXT", "text", "VARCHAR", "STRING"],
                Ty::Set => &["SET<TEXT>", "set<text>"],
                Ty::Int => &["INT", "INTEGER", "BIGINT"],
                Ty::Ts => &["TIMESTAMP", "timestamptz"],
                Ty::Float => &["FLOAT", "DOUBLE", "REAL"],
                Ty::Bool => &["BOOL", "BOOLEAN"],
                Ty::Events => &["EVENTS<TEXT>", "events<text>", "Events<Text>"],
            };
            cols.push(format!("{} {}", c.name, pick(&mut self.rng, names)));
        }
        let mut options = Vec::new();
        if let Some(r) = self.schema.retention {
            let key = pick(&mut self.rng, &["retention_days", "RETENTION_DAYS"]);
            options.push(format!("{key} = {r}"));
        }
        if let Some(c) = self.schema.consent {
            options.push(format!(
                "consent_column = {}",
                quote(&self.schema.columns[c].name)
            ));
        }
        if let Some(k) = self.schema.min_audience {
            options.push(format!("min_audience = {k}"));
        }
        shuffle(&mut self.rng, &mut options);
        let options = if options.is_empty() {
            String::new()
        } else {
            format!(" WITH ({})", options.join(", "))
        };
        format!(
            "CREATE TABLE {} ({}){options}",
            self.schema.table,
            cols.join(", ")
        )
    }

    fn texts(&self, c: usize) -> &[String] {
        match &self.domains[c] {
            Domain::Texts(t) => t,
            _ => unreachable!(),
        }
    }

    /// A random value of the INT / TIMESTAMP / FLOAT (cents) domain of column `c`.
    fn number(&mut self, c: usize) -> i64 {
        let d = match &self.domains[c] {
            Domain::Ints(d) | Domain::Cents(d) => d,
            other => unreachable!("{other:?} is not numeric"),
        };
        d[self.rng.random_range(0..d.len())]
    }

    fn id(&mut self) -> String {
        if self.rng.random_bool(0.05) {
            return pick(&mut self.rng, &["nobody", ""]).to_string();
        }
        pick(&mut self.rng, &self.ids).clone()
    }

    fn text(&mut self, c: usize, absent: bool) -> String {
        if absent && self.rng.random_bool(0.2) {
            let pool = if self.schema.columns[c].ty == Ty::Set {
                ABSENT_TAGS
            } else {
                ABSENT_TEXTS
            };
            return pick(&mut self.rng, pool).to_string();
        }
        let i = self.rng.random_range(0..self.texts(c).len());
        self.texts(c)[i].clone()
    }

    fn tags(&mut self, c: usize, min: usize, max: usize, absent: bool) -> Vec<String> {
        let n = self.rng.random_range(min..=max);
        (0..n).map(|_| self.text(c, absent)).collect()
    }

    /// A string literal, written with `''` or (sometimes) backslash escapes.
    fn str_lit(&mut self, text: String) -> Lit {
        if self.rng.random_bool(0.15) {
            Lit::StrBs(text)
        } else {
            Lit::Str(text)
        }
    }

    /// An event value of column `c` (sometimes one absent from the data).
    fn event_value(&mut self, c: usize, absent: bool) -> String {
        if absent && self.rng.random_bool(0.08) {
            return pick(&mut self.rng, ABSENT_EVENT_VALUES).to_string();
        }
        let Domain::Events { values, .. } = &self.domains[c] else {
            unreachable!()
        };
        values[self.rng.random_range(0..values.len())].clone()
    }

    /// A day events of column `c` fall on.
    fn event_day(&mut self, c: usize) -> i64 {
        let Domain::Events { days, .. } = &self.domains[c] else {
            unreachable!()
        };
        days[self.rng.random_range(0..days.len())]
    }

    /// A random instant of `day`: often its midnight or near a day boundary.
    fn time_of(&mut self, day: i64) -> i64 {
        let second = match self.rng.random_range(0..10) {
            0..=2 => 0,
            3 => DAY - 1,
            4 => self.rng.random_range(0..3600),
            5 => self.rng.random_range(DAY - 3600..DAY),
            _ => self.rng.random_range(0..DAY),
        };
        day * DAY + second
    }

    /// A time literal for `secs`: mostly `'...T..:..:..Z'`, sometimes a
    /// date alone (at midnight), another ISO-8601 form, `TIMESTAMP '...'`
    /// or seconds.
    fn time_lit(&mut self, secs: i64) -> Lit {
        if self.rng.random_bool(0.08) {
            return Lit::Int(secs);
        }
        let style = *pick(&mut self.rng, &[0, 0, 0, 0, 3, 3, 1, 2, 4]);
        Lit::Ts {
            text: iso8601(secs, style),
            secs,
            keyword: self.rng.random_bool(0.15),
        }
    }

    /// A time near the days of column `c` (or anywhere around the range).
    fn near_time(&mut self, c: usize) -> Lit {
        let day = if self.rng.random_bool(0.8) {
            self.event_day(c) + self.rng.random_range(-2..=2)
        } else {
            self.rng.random_range(FIRST_DAY - 10..=LAST_DAY + 10)
        };
        let secs = self.time_of(day);
        self.time_lit(secs)
    }

    /// Events to store in column `c`: one `EVENT(...)` or a list of 1-4.
    fn events_lit(&mut self, c: usize) -> Lit {
        let n = *pick(&mut self.rng, &[1, 1, 2, 2, 3, 4]);
        let events = (0..n)
            .map(|_| {
                let v = self.event_value(c, false);
                let day = self.event_day(c);
                let secs = self.time_of(day);
                (self.str_lit(v), self.time_lit(secs))
            })
            .collect();
        Lit::Events {
            events,
            list: n > 1 || self.rng.random_bool(0.5),
        }
    }

    /// `col HAS 'v' [ON AT LEAST k DAYS] [WITHIN | SINCE | BETWEEN]` on
    /// EVENTS column `c` (no WITHIN in writes: it depends on the clock).
    fn events_leaf(&mut self, c: usize) -> Pred {
        let v = self.event_value(c, true);
        let value = self.str_lit(v);
        let min_days = self
            .rng
            .random_bool(0.4)
            .then(|| *pick(&mut self.rng, &[1, 2, 2, 2, 3, 3, 4, 6]));
        let range = match self.rng.random_range(0..100) {
            0..=24 => None,
            25..=54 if !self.clock_free => {
                let n = match self.rng.random_range(0..10) {
                    // Back to about a day with events (or past them all).
                    0..=5 if self.today.is_some() => {
                        let today = self.today.unwrap_or_default();
                        let back = today - self.event_day(c) + self.rng.random_range(0..=2);
                        u64::try_from(back).unwrap_or(0).max(1)
                    }
                    0 => 1,
                    1 => *pick(&mut self.rng, &[2, 3, 7, 14, 30]),
                    2..=5 => self.rng.random_range(1..=20),
                    6..=8 => self.rng.random_range(1..=200),
                    _ => *pick(&mut self.rng, &[366, 4_000_000, 1_000_000_000]),
                };
                Some(Range::Within(n))
            }
            25..=74 => Some(Range::Since(self.near_time(c))),
            _ => {
                let t = self.near_time(c);
                let u = if self.rng.random_bool(0.3) {
                    // The same day, or a day or two on.
                    let day = t.secs().div_euclid(DAY) + self.rng.random_range(0..=2);
                    let secs = self.time_of(day);
                    self.time_lit(secs)
                } else {
                    self.near_time(c)
                };
                // Mostly in order; reversed bounds match nothing.
                if t.secs() > u.secs() && self.rng.random_bool(0.8) {
                    Some(Range::Between(u, t))
                } else {
                    Some(Range::Between(t, u))
                }
            }
        };
        Pred::Events {
            col: c,
            value,
            min_days,
            range,
        }
    }

    /// `AS OF` a time: inside, after or before the days of the events.
    pub fn as_of(&mut self) -> AsOf {
        let events: Vec<usize> = (0..self.schema.columns.len())
            .filter(|c| self.schema.columns[*c].ty == Ty::Events)
            .collect();
        let day = match self.rng.random_range(0..100) {
            // Among the days of a column's events.
            0..=44 if !events.is_empty() => {
                let c = *pick(&mut self.rng, &events);
                self.event_day(c) + self.rng.random_range(-1..=3)
            }
            // Just after all of them.
            45..=64 if !events.is_empty() => {
                let c = *pick(&mut self.rng, &events);
                let Domain::Events { days, .. } = &self.domains[c] else {
                    unreachable!()
                };
                days.iter().max().copied().unwrap_or(LAST_DAY) + self.rng.random_range(0..=10)
            }
            0..=74 => LAST_DAY + self.rng.random_range(0..=40),
            75..=86 => self.rng.random_range(FIRST_DAY - 5..=LAST_DAY + 10),
            87..=93 => FIRST_DAY + self.rng.random_range(-3..=30),
            _ => LAST_DAY + self.rng.random_range(100..=400),
        };
        let secs = self.time_of(day);
        AsOf(self.time_lit(secs))
    }

    fn ts_lit(&mut self, secs: i64) -> Lit {
        if !(TS_MIN_ISO..=TS_MAX_ISO - 3600).contains(&secs) || self.rng.random_bool(0.4) {
            return Lit::Int(secs);
        }
        Lit::Ts {
            text: iso8601(secs, self.rng.random_range(0..5)),
            secs,
            keyword: self.rng.random_bool(0.3),
        }
    }

    fn cents_lit(&mut self, cents: i64) -> Lit {
        if cents % 100 == 0 && self.rng.random_bool(0.3) {
            return Lit::Int(cents / 100);
        }
        if self.rng.random_bool(0.1) {
            return Lit::Float(format!("{cents}e-2"));
        }
        let sign = if cents < 0 { "-" } else { "" };
        let a = cents.unsigned_abs();
        Lit::Float(format!("{sign}{}.{:02}", a / 100, a % 100))
    }

    /// A value to store in column `c` (NULL sometimes).
    fn data_lit(&mut self, c: usize) -> Lit {
        if self.rng.random_bool(0.12) {
            return Lit::Null;
        }
        match self.schema.columns[c].ty {
            Ty::Text => {
                let t = self.text(c, false);
                self.str_lit(t)
            }
            Ty::Set => {
                if self.rng.random_bool(0.15) {
                    Lit::Set(Vec::new())
                } else {
                    Lit::Set(self.tags(c, 1, 4, false))
                }
            }
            Ty::Int if self.extremes && self.rng.random_bool(0.05) => {
                Lit::Int(*pick(&mut self.rng, INT_EXTREMES))
            }
            Ty::Int => Lit::Int(self.number(c)),
            Ty::Ts if self.extremes && self.rng.random_bool(0.05) => {
                Lit::Int(*pick(&mut self.rng, INT_EXTREMES))
            }
            Ty::Ts => {
                let secs = self.number(c);
                self.ts_lit(secs)
            }
            Ty::Float => {
                let cents = self.number(c);
                self.cents_lit(cents)
            }
            Ty::Bool => Lit::Bool(self.rng.random_bool(0.5)),
            Ty::Events => self.events_lit(c),
        }
    }

    /// A non-NULL literal to compare column `c` with: usually a value of
    /// its domain, sometimes a neighbour or a value absent from the data.
    fn pred_lit(&mut self, c: usize) -> Lit {
        match self.schema.columns[c].ty {
            Ty::Text | Ty::Set => {
                let t = self.text(c, true);
                self.str_lit(t)
            }
            Ty::Int | Ty::Ts => {
                let v = self.number(c);
                let v = match self.rng.random_range(0..10) {
                    0 => v.saturating_add(1),
                    1 => v.saturating_sub(1),
                    2 if self.rng.random_bool(0.3) => *pick(&mut self.rng, INT_EXTREMES),
                    3 => self.rng.random_range(-1000..=1000),
                    _ => v,
                };
                if self.schema.columns[c].ty == Ty::Ts {
                    self.ts_lit(v)
                } else {
                    Lit::Int(v)
                }
            }
            Ty::Float => {
                let v = self.number(c);
                let v = match self.rng.random_range(0..10) {
                    0 => v + 1,
                    1 => v - 1,
                    2 => self.rng.random_range(-2000..=2000),
                    _ => v,
                };
                self.cents_lit(v)
            }
            Ty::Bool => Lit::Bool(self.rng.random_bool(0.5)),
            Ty::Events => {
                let v = self.event_value(c, true);
                self.str_lit(v)
            }
        }
    }

    fn lits(&mut self, c: usize, max: usize) -> Vec<Lit> {
        let n = self.rng.random_range(1..=max);
        (0..n).map(|_| self.pred_lit(c)).collect()
    }

    fn key_leaf(&mut self) -> Pred {
        let r = self.rng.random_range(0..10);
        let id_lit = |g: &mut Gen| {
            let id = g.id();
            g.str_lit(id)
        };
        match r {
            0..=3 => {
                let op = *pick(&mut self.rng, &[Op::Eq, Op::Eq, Op::Ne, Op::NeAlt]);
                Pred::Cmp(Target::Key, op, id_lit(self))
            }
            4..=7 => {
                let n = self.rng.random_range(1..=4);
                let ids = (0..n).map(|_| id_lit(self)).collect();
                Pred::In(Target::Key, ids, self.rng.random_bool(0.4))
            }
            _ => Pred::IsNull(Target::Key, self.rng.random_bool(0.5)),
        }
    }

    fn leaf(&mut self) -> Pred {
        if self.rng.random_bool(0.1) {
            return self.key_leaf();
        }
        if !self.schema.segments.is_empty() && self.rng.random_bool(0.15) {
            let names: Vec<String> = self
                .schema
                .segments
                .iter()
                .filter(|(_, (p, _))| !self.clock_free || p.clock_free(&self.schema))
                .map(|(n, _)| n.clone())
                .collect();
            if !names.is_empty() {
                return Pred::InSegment(pick(&mut self.rng, &names).clone());
            }
        }
        let c = self.rng.random_range(0..self.schema.columns.len());
        let t = Target::Col(c);
        if self.rng.random_bool(0.1) {
            return Pred::IsNull(t, self.rng.random_bool(0.5));
        }
        match self.schema.columns[c].ty {
            // A write's today is the clock's: retention would clamp by it.
            Ty::Events if self.clock_free && self.schema.retention.is_some() => {
                Pred::IsNull(t, self.rng.random_bool(0.5))
            }
            Ty::Events => self.events_leaf(c),
            Ty::Set => match self.rng.random_range(0..3) {
                0 => Pred::Has(c, self.pred_lit(c)),
                1 => Pred::HasAny(c, self.lits(c, 3)),
                _ => Pred::HasAll(c, self.lits(c, 3)),
            },
            Ty::Bool => match self.rng.random_range(0..2) {
                0 => {
                    let op = *pick(&mut self.rng, &[Op::Eq, Op::Ne, Op::NeAlt]);
                    Pred::Cmp(t, op, self.pred_lit(c))
                }
                _ => Pred::In(t, self.lits(c, 2), self.rng.random_bool(0.4)),
            },
            Ty::Text | Ty::Int | Ty::Ts | Ty::Float => match self.rng.random_range(0..4) {
                0 | 1 => {
                    let op = *pick(&mut self.rng, &Op::ALL);
                    Pred::Cmp(t, op, self.pred_lit(c))
                }
                2 => Pred::In(t, self.lits(c, 4), self.rng.random_bool(0.4)),
                _ => {
                    let (lo, hi) = (self.pred_lit(c), self.pred_lit(c));
                    Pred::Between(c, lo, hi, self.rng.random_bool(0.4))
                }
            },
        }
    }

    /// A random predicate tree of at most `depth` levels of AND / OR / NOT.
    pub fn pred(&mut self, depth: u32) -> Pred {
        if depth == 0 || self.rng.random_bool(0.3) {
            return self.leaf();
        }
        match self.rng.random_range(0..10) {
            0..=3 => {
                let n = self.rng.random_range(2..=3);
                Pred::And((0..n).map(|_| self.pred(depth - 1)).collect())
            }
            4..=6 => {
                let n = self.rng.random_range(2..=3);
                Pred::Or((0..n).map(|_| self.pred(depth - 1)).collect())
            }
            7 | 8 => Pred::Not(Box::new(self.pred(depth - 1))),
            _ => Pred::Paren(Box::new(self.pred(depth - 1))),
        }
    }

    /// A WHERE clause (none with probability `p_none`); mostly small trees
    /// so that many answers are not empty, sometimes as deep as 4.
    fn filter(&mut self, p_none: f64) -> Option<Pred> {
        if self.rng.random_bool(p_none) {
            None
        } else {
            let depth = *pick(&mut self.rng, &[0, 1, 1, 2, 2, 3, 4]);
            Some(self.pred(depth))
        }
    }

    /// A write statement; its predicates do not depend on the clock.
    pub fn write(&mut self) -> Write {
        self.clock_free = true;
        let w = self.write_any();
        self.clock_free = false;
        w
    }

    fn write_any(&mut self) -> Write {
        let n = self.schema.columns.len();
        match self.rng.random_range(0..100) {
            0..=54 => {
                let mut targets: Vec<Target> = subset(
                    &mut self.rng,
                    &(0..n).map(Target::Col).collect::<Vec<_>>(),
                    0,
                    n,
                );
                if targets.is_empty() && self.rng.random_bool(0.7) {
                    targets.push(Target::Col(self.rng.random_range(0..n)));
                }
                let at = self.rng.random_range(0..=targets.len());
                targets.insert(at, Target::Key);
                let rows = (0..self.rng.random_range(1..=6))
                    .map(|_| {
                        targets
                            .iter()
                            .map(|t| match t {
                                Target::Key => {
                                    let id = pick(&mut self.rng, &self.ids).clone();
                                    self.str_lit(id)
                                }
                                Target::Col(c) => self.data_lit(*c),
                            })
                            .collect()
                    })
                    .collect();
                Write::Insert { targets, rows }
            }
            55..=79 => {
                let cols = subset(&mut self.rng, &(0..n).collect::<Vec<_>>(), 1, 3);
                let assigns = cols
                    .into_iter()
                    .map(|c| {
                        if self.schema.columns[c].ty == Ty::Set {
                            match self.rng.random_range(0..4) {
                                0 => Assign::Set(c, self.data_lit(c)),
                                1 | 2 => Assign::Add(c, self.tags(c, 0, 2, true)),
                                _ => Assign::Remove(c, self.tags(c, 1, 2, true)),
                            }
                        } else {
                            Assign::Set(c, self.data_lit(c))
                        }
                    })
                    .collect();
                let filter = if self.rng.random_bool(0.15) {
                    Some(self.key_leaf())
                } else {
                    self.filter(0.06)
                };
                Write::Update { assigns, filter }
            }
            _ => {
                let filter = match self.rng.random_range(0..100) {
                    0..=29 => Some(self.key_leaf()),
                    30..=96 => self.filter(0.0),
                    _ => None,
                };
                Write::Delete { filter }
            }
        }
    }

    fn agg(&mut self) -> Agg {
        let n = self.schema.columns.len();
        if self.rng.random_bool(0.15) {
            return Agg::COUNT_STAR;
        }
        if self.rng.random_bool(0.05) {
            return Agg {
                func: Func::Count,
                arg: Some(Target::Key),
            };
        }
        let c = self.rng.random_range(0..n);
        let ty = self.schema.columns[c].ty;
        let mut funcs = vec![Func::Count];
        if ty.numeric() {
            funcs.extend([Func::Sum, Func::Avg]);
        }
        if ty.ordered() {
            funcs.extend([Func::Min, Func::Max]);
        }
        Agg {
            func: *pick(&mut self.rng, &funcs),
            arg: Some(Target::Col(c)),
        }
    }

    /// Segment names: a few, so that creating replaces and drops find them.
    const SEGMENT_NAMES: [&'static str; 4] = ["s0", "s1", "s2", "s3"];

    /// CREATE [OR REPLACE] SEGMENT or DROP SEGMENT, with a definition that
    /// may use the other segments (and so, sometimes, make a cycle).
    pub fn segment_op(&mut self) -> SegmentOp {
        let name = pick(&mut self.rng, &Self::SEGMENT_NAMES).to_string();
        if self.rng.random_bool(0.25) {
            return SegmentOp::Drop {
                name,
                if_exists: self.rng.random_bool(0.5),
            };
        }
        let depth = *pick(&mut self.rng, &[0, 1, 1, 2]);
        // Segments are evaluated at the AS OF of each query using them.
        let today = self.as_of().today();
        self.today = Some(today);
        let def = self.pred(depth);
        self.today = None;
        SegmentOp::Create {
            name,
            def,
            materialized: self.rng.random_bool(0.5),
            replace: self.rng.random_bool(0.7),
        }
    }

    fn overlap_query(&mut self) -> Query {
        let k = if self.rng.random_bool(0.1) {
            self.rng.random_range(6..=16)
        } else {
            self.rng.random_range(2..=4)
        };
        let segments: Vec<String> = self.schema.segments.keys().cloned().collect();
        let mut items = Vec::new();
        for i in 0..k {
            let item = if !segments.is_empty() && self.rng.random_bool(0.4) {
                OverlapItem::Segment(pick(&mut self.rng, &segments).clone())
            } else {
                let depth = *pick(&mut self.rng, &[0, 0, 1, 2]);
                OverlapItem::Pred(self.pred(depth))
            };
            let alias = (matches!(item, OverlapItem::Pred(_)) && self.rng.random_bool(0.7)
                || self.rng.random_bool(0.05))
            .then(|| format!("x{i}"));
            items.push((item, alias));
        }
        let has_segment = items
            .iter()
            .any(|(i, _)| matches!(i, OverlapItem::Segment(_)));
        Query::Overlap {
            items,
            on_table: !has_segment || self.rng.random_bool(0.3),
            base: self.filter(0.6),
            matrix: self.rng.random_bool(0.3),
        }
    }

    /// An audience: a named segment (sometimes) or a predicate.
    fn audience(&mut self) -> OverlapItem {
        let segments: Vec<String> = self.schema.segments.keys().cloned().collect();
        if !segments.is_empty() && self.rng.random_bool(0.35) {
            OverlapItem::Segment(pick(&mut self.rng, &segments).clone())
        } else {
            let depth = *pick(&mut self.rng, &[0, 0, 1, 2]);
            OverlapItem::Pred(self.pred(depth))
        }
    }

    /// A purpose for EXPORT / LOOKALIKE: mostly one of the consent
    /// column's tags (when the table has one), sometimes none.
    fn purpose(&mut self) -> Option<String> {
        match self.schema.consent {
            Some(c) if self.rng.random_bool(0.9) => Some(self.text(c, true)),
            Some(_) => None,
            None => self
                .rng
                .random_bool(0.2)
                .then(|| pick(&mut self.rng, &["ads", "it's"]).to_string()),
        }
    }

    fn export_query(&mut self) -> Query {
        let audience = self.audience();
        let n = self.schema.columns.len();
        let columns = subset(&mut self.rng, &(0..n).collect::<Vec<_>>(), 0, 3);
        Query::Export {
            on_table: matches!(audience, OverlapItem::Pred(_)) || self.rng.random_bool(0.3),
            audience,
            columns,
            purpose: self.purpose(),
            limit: self
                .rng
                .random_bool(0.3)
                .then(|| self.rng.random_range(0..=8)),
        }
    }

    fn lookalike_query(&mut self) -> Query {
        let seed = self.audience();
        Query::Lookalike {
            on_table: matches!(seed, OverlapItem::Pred(_)) || self.rng.random_bool(0.3),
            seed,
            within: self.filter(0.6),
            purpose: self.purpose(),
            limit: self
                .rng
                .random_bool(0.6)
                .then(|| *pick(&mut self.rng, &[1, 2, 3, 5, 10, 1000])),
        }
    }

    fn top_query(&mut self) -> Option<Query> {
        let columns: Vec<usize> = (0..self.schema.columns.len())
            .filter(|c| matches!(self.schema.columns[*c].ty, Ty::Text | Ty::Set))
            .collect();
        if columns.is_empty() {
            return None;
        }
        Some(Query::Top {
            n: *pick(&mut self.rng, &[0, 1, 2, 3, 5, 10, 1000]),
            col: *pick(&mut self.rng, &columns),
            filter: self.filter(0.2),
            within: self.filter(0.6),
            by_lift: *pick(&mut self.rng, &[None, Some(false), Some(true), Some(true)]),
            min_count: self
                .rng
                .random_bool(0.3)
                .then(|| self.rng.random_range(0..=4)),
        })
    }

    /// A query, with `AS OF` when its answer depends on the day (and often
    /// otherwise too on tables with EVENTS columns).
    pub fn query(&mut self) -> Stmt {
        let as_of = self.as_of();
        self.today = Some(as_of.today());
        let query = self.query_any();
        self.today = None;
        let p = if self.schema.has_events() { 0.8 } else { 0.1 };
        let as_of = (!query.clock_free(&self.schema) || self.rng.random_bool(p)).then_some(as_of);
        Stmt { query, as_of }
    }

    fn query_any(&mut self) -> Query {
        let analytics = self.rng.random_range(0..100);
        if analytics < 10 {
            return self.overlap_query();
        }
        if analytics < 17 {
            if let Some(q) = self.top_query() {
                return q;
            }
        }
        if analytics < 23 {
            return self.export_query();
        }
        if analytics < 27 {
            return self.lookalike_query();
        }
        let groupable: Vec<usize> = (0..self.schema.columns.len())
            .filter(|c| self.schema.columns[*c].ty.groupable())
            .collect();
        let filter = self.filter(0.2);
        let r = self.rng.random_range(0..100);
        if r < 25 {
            let alias = self.rng.random_bool(0.2).then(|| "n".to_string());
            return Query::Aggs {
                items: vec![(Agg::COUNT_STAR, alias)],
                filter,
            };
        }
        if r < 45 {
            let items = (0..self.rng.random_range(1..=5))
                .map(|_| (self.agg(), None))
                .collect();
            return Query::Aggs { items, filter };
        }
        if r < 72 && !groupable.is_empty() {
            return self.group_query(&groupable, filter);
        }
        let fields = if self.rng.random_bool(0.15) {
            None
        } else {
            let n = self.schema.columns.len();
            let mut f: Vec<Target> = subset(
                &mut self.rng,
                &(0..n).map(Target::Col).collect::<Vec<_>>(),
                0,
                n,
            );
            if f.is_empty() || self.rng.random_bool(0.9) {
                let at = if self.rng.random_bool(0.7) {
                    0
                } else {
                    self.rng.random_range(0..=f.len())
                };
                f.insert(at, Target::Key);
            }
            Some(f)
        };
        let limit = self
            .rng
            .random_bool(0.25)
            .then(|| self.rng.random_range(0..=8));
        Query::Rows {
            fields,
            filter,
            limit,
        }
    }

    fn group_query(&mut self, groupable: &[usize], filter: Option<Pred>) -> Query {
        if self.rng.random_bool(0.15) {
            // The most common values (src/query/top_groups.rs): one key,
            // COUNT(*) ordered descending first, a LIMIT.
            let key = *pick(&mut self.rng, groupable);
            let count = if self.rng.random_bool(0.5) {
                OrderKey::CountStar
            } else {
                OrderKey::Pos(2)
            };
            let mut order = vec![Order {
                key: count,
                desc: Some(true),
            }];
            if self.rng.random_bool(0.5) {
                let desc = *pick(&mut self.rng, &[None, Some(false), Some(true)]);
                order.push(Order {
                    key: OrderKey::Pos(1),
                    desc,
                });
            }
            return Query::Groups {
                keys: vec![key],
                items: vec![GItem::Key(key, None), GItem::Agg(Agg::COUNT_STAR, None)],
                filter,
                order,
                limit: Some(self.rng.random_range(0..=6)),
            };
        }
        let max = if self.rng.random_bool(0.4) { 2 } else { 1 };
        let keys = subset(&mut self.rng, groupable, 1, max);
        let mut items = Vec::new();
        for k in &keys {
            if self.rng.random_bool(0.85) {
                let alias = self.rng.random_bool(0.15).then(|| format!("k{k}"));
                items.push(GItem::Key(*k, alias));
            }
        }
        if self.rng.random_bool(0.85) {
            let alias = self.rng.random_bool(0.2).then(|| "n".to_string());
            items.push(GItem::Agg(Agg::COUNT_STAR, alias));
        }
        if self.rng.random_bool(0.3) {
            for _ in 0..self.rng.random_range(1..=2) {
                let a = self.agg();
                items.push(GItem::Agg(a, None));
            }
        }
        if items.is_empty() {
            items.push(GItem::Agg(Agg::COUNT_STAR, None));
        }
        if self.rng.random_bool(0.3) {
            shuffle(&mut self.rng, &mut items);
        }
        let mut order = Vec::new();
        if self.rng.random_bool(0.5) {
            // Only exact outputs: FLOAT sums may differ in the last bits.
            let eligible: Vec<usize> = (0..items.len())
                .filter(|i| !matches!(&items[*i], GItem::Agg(a, _) if a.approx(&self.schema)))
                .collect();
            for _ in 0..self.rng.random_range(1..=2) {
                if eligible.is_empty() {
                    break;
                }
                let i = *pick(&mut self.rng, &eligible);
                let key = match &items[i] {
                    GItem::Key(c, alias) if self.rng.random_bool(0.6) => match alias {
                        Some(a) if self.rng.random_bool(0.7) => OrderKey::Name(a.clone()),
                        _ => OrderKey::Name(self.schema.columns[*c].name.clone()),
                    },
                    GItem::Agg(a, None) if a.arg.is_some() && self.rng.random_bool(0.5) => {
                        OrderKey::Agg(a.clone())
                    }
                    GItem::Agg(_, Some(alias)) if self.rng.random_bool(0.6) => {
                        OrderKey::Name(alias.clone())
                    }
                    GItem::Agg(a, None) if *a == Agg::COUNT_STAR && self.rng.random_bool(0.5) => {
                        if self.rng.random_bool(0.7) {
                            OrderKey::CountStar
                        } else {
                            OrderKey::Name("count".into())
                        }
                    }
                    _ => OrderKey::Pos(i + 1),
                };
                let desc = *pick(&mut self.rng, &[None, Some(false), Some(true), Some(true)]);
                order.push(Order { key, desc });
            }
        }
        let limit = self
            .rng
            .random_bool(0.3)
            .then(|| self.rng.random_range(0..=5));
        Query::Groups {
            keys,
            items,
            filter,
            order,
            limit,
        }
    }

    /// A query that reads back every profile, for full-state comparisons.
    pub fn everything(&self) -> Stmt {
        Stmt {
            query: Query::Rows {
                fields: None,
                filter: None,
                limit: None,
            },
            as_of: None,
        }
    }

    /// INSERTs of every id of a large table, 500 profiles per statement
    /// (nothing for a small table).
    pub fn bulk_load(&mut self) -> Vec<Write> {
        if !self.big {
            return Vec::new();
        }
        let n = self.schema.columns.len();
        let targets: Vec<Target> = std::iter::once(Target::Key)
            .chain((0..n).map(Target::Col))
            .collect();
        let ids = self.ids.clone();
        ids.chunks(500)
            .map(|chunk| Write::Insert {
                targets: targets.clone(),
                rows: chunk
                    .iter()
                    .map(|id| {
                        std::iter::once(Lit::Str(id.clone()))
                            .chain((0..n).map(|c| self.data_lit(c)))
                            .collect()
                    })
                    .collect(),
            })
            .collect()
    }

    /// An INSERT that must fail as a whole: one of its rows has an empty id
    /// or a value of the wrong type (a string that is no timestamp, ...).
    pub fn bad_write(&mut self) -> Write {
        let n = self.schema.columns.len();
        let targets: Vec<Target> = std::iter::once(Target::Key)
            .chain((0..n).map(Target::Col))
            .collect();
        let mut rows: Vec<Vec<Lit>> = (0..self.rng.random_range(1..=3))
            .map(|_| {
                let id = pick(&mut self.rng, &self.ids).clone();
                std::iter::once(Lit::Str(id))
                    .chain((0..n).map(|c| self.data_lit(c)))
                    .collect()
            })
            .collect();
        let mut bad: Vec<Lit> = rows[0].clone();
        if self.rng.random_bool(0.3) {
            bad[0] = Lit::Str(String::new());
        } else {
            let c = self.rng.random_range(0..n);
            bad[c + 1] = match self.schema.columns[c].ty {
                Ty::Text => Lit::Int(1),
                Ty::Set => Lit::Str("a".into()),
                Ty::Int => Lit::Float("1.5".into()),
                Ty::Ts => Lit::Str("yesterday".into()),
                Ty::Float => Lit::Str("1.5".into()),
                Ty::Bool => Lit::Int(1),
                Ty::Events => match self.rng.random_range(0..4) {
                    0 => Lit::Str("baking".into()),
                    // `[]` is a SET literal, no list of events.
                    1 => Lit::Set(Vec::new()),
                    2 => Lit::Set(vec!["2026-07-01:baking".into()]),
                    _ => Lit::Events {
                        events: vec![(Lit::Str("baking".into()), Lit::Str("yesterday".into()))],
                        list: self.rng.random_bool(0.5),
                    },
                },
            };
        }
        let at = self.rng.random_range(0..=rows.len());
        rows.insert(at, bad);
        Write::Insert { targets, rows }
    }
}

/// A segment statement and what the model expects of it.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentOp {
    Create {
        name: String,
        def: Pred,
        materialized: bool,
        replace: bool,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
}

impl SegmentOp {
    pub fn sql(&self, s: &Schema) -> String {
        match self {
            SegmentOp::Create {
                name,
                def,
                materialized,
                replace,
            } => format!(
                "CREATE {}SEGMENT {name} ON {} AS {}{}",
                if *replace { "OR REPLACE " } else { "" },
                s.table_ref(),
                def.sql(s),
                if *materialized { " MATERIALIZED" } else { "" }
            ),
            SegmentOp::Drop { name, if_exists } => format!(
                "DROP SEGMENT {}{name}",
                if *if_exists { "IF EXISTS " } else { "" }
            ),
        }
    }

    /// Applies the statement to the model's catalog, or says why the engine
    /// must refuse it (and then changes nothing).
    pub fn apply(&self, s: &mut Schema) -> Result<(), String> {
        match self {
            SegmentOp::Create {
                name,
                def,
                materialized,
                replace,
            } => {
                if s.segments.contains_key(name) && !replace {
                    return Err(format!("segment {name} already exists"));
                }
                if def.reaches(s, name) {
                    return Err(format!("segment {name} would use itself"));
                }
                s.segments
                    .insert(name.clone(), (def.clone(), *materialized));
                Ok(())
            }
            SegmentOp::Drop { name, if_exists } => {
                if !s.segments.contains_key(name) {
                    return if *if_exists {
                        Ok(())
                    } else {
                        Err(format!("segment {name} does not exist"))
                    };
                }
                let users: Vec<&String> = s
                    .segments
                    .iter()
                    .filter(|(n, (p, _))| *n != name && p.segments().contains(&name.as_str()))
                    .map(|(n, _)| n)
                    .collect();
                if !users.is_empty() {
                    return Err(format!("segment {name} is used by {users:?}"));
                }
                s.segments.remove(name);
                Ok(())
            }
        }
    }
}
