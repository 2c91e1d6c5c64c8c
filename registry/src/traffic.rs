//! The `traffic` table: the mirror's cumulative bytes served and fetched upstream, sampled over
//! time and kept across restarts, for the console's "what the cache saved" chart.

use rusqlite::{OptionalExtension, params};

use crate::error::{RegistryError, read_error, write_error};
use crate::registry::Registry;

/// Cumulative byte counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficRow {
    /// Unix seconds.
    pub at: i64,
    /// File bytes served to clients, in all.
    pub served: u64,
    /// Bytes fetched from the upstream, in all.
    pub fetched: u64,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TrafficRow> {
    Ok(TrafficRow {
        at: row.get(0)?,
        served: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
        fetched: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
    })
}

impl Registry {
    /// Records `row` (replacing one at the same second) and forgets rows before `keep_after`.
    pub async fn record_traffic(
        &self,
        row: TrafficRow,
        keep_after: i64,
    ) -> Result<(), RegistryError> {
        self.write(move |conn| {
            let write = || -> rusqlite::Result<()> {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO traffic (at, served, fetched) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    row.at,
                    to_i64(row.served),
                    to_i64(row.fetched)
                ])?;
                conn.prepare_cached("DELETE FROM traffic WHERE at < ?1")?
                    .execute([keep_after])?;
                Ok(())
            };
            write().map_err(write_error(|| "record the mirror's traffic".to_owned()))
        })
        .await
    }

    /// The newest row, if any.
    pub async fn latest_traffic(&self) -> Result<Option<TrafficRow>, RegistryError> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT at, served, fetched FROM traffic ORDER BY at DESC LIMIT 1")
                .and_then(|mut stmt| stmt.query_row([], from_row).optional())
                .map_err(read_error(|| "read the mirror's traffic".to_owned()))
        })
        .await
    }

    /// Rows from `since` on, oldest first, thinned evenly to at most `most` (the newest kept).
    pub async fn traffic_since(
        &self,
        since: i64,
        most: usize,
    ) -> Result<Vec<TrafficRow>, RegistryError> {
        let rows = self
            .read(move |conn| {
                let query = || -> rusqlite::Result<Vec<TrafficRow>> {
                    conn.prepare_cached(
                        "SELECT at, served, fetched FROM traffic WHERE at >= ?1 ORDER BY at",
                    )?
                    .query_map([since], from_row)?
                    .collect()
                };
                query().map_err(read_error(|| "read the mirror's traffic".to_owned()))
            })
            .await?;
        Ok(thin(rows, most))
    }
}

/// Every k-th row so that at most `most` remain, always keeping the last.
fn thin(rows: Vec<TrafficRow>, most: usize) -> Vec<TrafficRow> {
    if rows.len() <= most || most < 2 {
        return if most == 0 { Vec::new() } else { rows };
    }
    let step = rows.len().div_ceil(most - 1);
    let last = rows.len() - 1;
    rows.into_iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == last)
        .map(|(_, row)| row)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: i64) -> Vec<TrafficRow> {
        (0..n)
            .map(|at| TrafficRow {
                at,
                served: at as u64,
                fetched: 0,
            })
            .collect()
    }

    #[test]
    fn thinning_keeps_the_bound_and_the_newest() {
        for (n, most) in [(10, 20), (1000, 720), (8640, 720), (721, 720), (5, 2)] {
            let thinned = thin(rows(n), most);
            assert!(
                thinned.len() <= most,
                "{n} rows thinned to {}",
                thinned.len()
            );
            assert_eq!(thinned.last().unwrap().at, n - 1);
            assert_eq!(thinned[0].at, 0);
            assert!(thinned.windows(2).all(|w| w[0].at < w[1].at));
        }
        assert!(thin(rows(5), 0).is_empty());
    }
}
