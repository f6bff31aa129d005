//! Query strings: pagination (`limit`, `after`) and the `Link` header to the next page.

use std::fmt::Display;
use std::str::FromStr;

use actix_web::HttpRequest;
use aetr_engine::machine::State;
use aetr_engine::FieldError;
use uuid::Uuid;

use super::error::ApiError;

/// `limit` when absent.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit`.
pub const MAX_LIMIT: u32 = 1000;

/// A request's query parameters, decoded. Parameters the endpoint does not know are ignored.
#[derive(Debug)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// The query of a request. A NUL character (`%00`) in it is refused: no value with one could
    /// be stored or searched for.
    pub fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
        if let Some((name, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            let e = "contains a NUL character (%00), which no parameter may hold";
            return Err(ApiError::invalid(name, e));
        }
        Ok(Query { pairs })
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A value that is not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// `stepId`, the filter of the run lists, checked.
    pub fn step_id(&self) -> Result<Option<Uuid>, FieldError> {
        self.uuid("stepId", "a step's id")
    }

    /// The id in parameter `name`, if given; `what` names it in the error.
    pub fn uuid(&self, name: &str, what: &str) -> Result<Option<Uuid>, FieldError> {
        let Some(raw) = self.non_empty(name) else { return Ok(None) };
        Uuid::try_parse(raw)
            .map(Some)
            .map_err(|_| FieldError::invalid(name, format!("expected {what}, found {raw:?}")))
    }

    /// `state`, a run's state, checked.
    pub fn state(&self) -> Result<Option<State>, FieldError> {
        let Some(raw) = self.non_empty("state") else { return Ok(None) };
        let run_state = State::parse(raw).filter(|s| State::RUN.contains(s));
        run_state.map(Some).ok_or_else(|| {
            FieldError::invalid(
                "state",
                format!(
                    "unknown state {raw:?}; expected Pending, Executing, Complete, Error or \
                     Cancelled"
                ),
            )
        })
    }

    /// `limit` and `after` (an id), checked.
    pub fn page(&self) -> Result<Page, ApiError> {
        self.page_by("the id of the last item seen")
    }

    /// `limit` and `after`, checked; `after` is a `C`, described as `what` in errors.
    pub fn page_by<C: FromStr + Display + Copy>(&self, what: &str) -> Result<Page<C>, ApiError> {
        let mut errors = Vec::new();
        let limit = match self.non_empty("limit") {
            None => Some(DEFAULT_LIMIT),
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Some(n),
                _ => {
                    errors.push(FieldError::invalid(
                        "limit",
                        format!("expected a whole number from 1 to {MAX_LIMIT}, found {raw:?}"),
                    ));
                    None
                }
            },
        };
        let after = match self.non_empty("after") {
            None => None,
            Some(raw) => match raw.parse::<C>() {
                Ok(cursor) => Some(cursor),
                Err(_) => {
                    errors.push(FieldError::invalid(
                        "after",
                        format!("expected {what}, found {raw:?}"),
                    ));
                    None
                }
            },
        };
        match aetr_engine::FieldErrors::from_vec(errors) {
            Some(e) => Err(e.into()),
            None => Ok(Page { limit: limit.unwrap_or(DEFAULT_LIMIT), after }),
        }
    }

    /// The URL of the next page: this request's, with `after` set to `last`.
    fn next_url(&self, req: &HttpRequest, last: impl Display) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs.iter().filter(|(k, _)| k != "after") {
            query.append_pair(k, v);
        }
        query.append_pair("after", &last.to_string());
        format!("{}?{}", req.path(), query.finish())
    }
}

/// One page's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Page<C = Uuid> {
    pub limit: u32,
    pub after: Option<C>,
}

impl<C: Display> Page<C> {
    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts the fetched rows to the page, and gives the `Link` header's value when another page
    /// follows.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        id: impl Fn(&T) -> C,
        query: &Query,
        req: &HttpRequest,
    ) -> (Vec<T>, Option<String>) {
        if rows.len() <= self.limit as usize {
            return (rows, None);
        }
        rows.truncate(self.limit as usize);
        let link =
            rows.last().map(|last| format!("<{}>; rel=\"next\"", query.next_url(req, id(last))));
        (rows, link)
    }
}
