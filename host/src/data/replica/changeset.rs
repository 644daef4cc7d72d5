//! SQLite's session extension, through the bundled library's own FFI (rusqlite wraps it only
//! behind a feature that needs bindgen and libclang): a [`Session`] records what a transaction
//! changed as a changeset, and [`apply`] plays a changeset into another copy of the database.
//!
//! Changesets carry the values a transaction left, not the SQL that made them, so a replica
//! ends up with the writer's `datetime('now')`, `random()` and rowids, not its own. Schema
//! changes are not recorded by sessions: the caller ships those as statements.

use std::ffi::{CStr, c_char, c_int, c_void};

use rusqlite::{Connection, ffi};

/// The table each replicated file keeps its applied sequence in; never recorded.
pub const POSITION_TABLE: &str = "_ledge_replication";

/// Whether this build of SQLite has the session extension (`LIBSQLITE3_FLAGS` in
/// `.cargo/config.toml` compiles it in).
pub fn available() -> bool {
    // SAFETY: a NUL-terminated option name.
    unsafe { ffi::sqlite3_compileoption_used(c"ENABLE_SESSION".as_ptr()) == 1 }
}

/// Records every change made to the tables of `main` through one connection, tables without
/// a primary key included (by their rowid), the position table excluded.
pub struct Session {
    raw: *mut ffi::sqlite3_session,
}

impl Session {
    /// Starts recording on `db`. The session must be dropped before `db` is closed.
    pub fn start(db: &Connection) -> rusqlite::Result<Self> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `db` is a live connection; `raw` receives the new session or stays null.
        check(db, unsafe {
            ffi::sqlite3session_create(db.handle(), c"main".as_ptr(), &mut raw)
        })?;
        let session = Self { raw };
        let mut rowid: c_int = 1;
        // SAFETY: the session is live and no table is attached yet, as the option requires;
        // `rowid` outlives the call.
        check(db, unsafe {
            ffi::sqlite3session_object_config(
                session.raw,
                ffi::SQLITE_SESSION_OBJCONFIG_ROWID,
                (&raw mut rowid).cast(),
            )
        })?;
        // SAFETY: `not_the_position_table` ignores its context; a null table name attaches
        // every table of `main`.
        unsafe {
            ffi::sqlite3session_table_filter(
                session.raw,
                Some(not_the_position_table),
                std::ptr::null_mut(),
            );
            check(
                db,
                ffi::sqlite3session_attach(session.raw, std::ptr::null()),
            )?;
        }
        Ok(session)
    }

    /// What the connection changed since the session started (empty if nothing).
    pub fn changeset(&self, db: &Connection) -> rusqlite::Result<Vec<u8>> {
        let mut size: c_int = 0;
        let mut buffer: *mut c_void = std::ptr::null_mut();
        // SAFETY: the session is live; SQLite allocates `buffer`, freed below.
        check(db, unsafe {
            ffi::sqlite3session_changeset(self.raw, &mut size, &mut buffer)
        })?;
        if buffer.is_null() {
            return Ok(Vec::new());
        }
        let length = usize::try_from(size).unwrap_or(0);
        // SAFETY: SQLite wrote `size` bytes at `buffer`, which is freed once copied.
        let changeset = unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), length) }.to_vec();
        unsafe { ffi::sqlite3_free(buffer) };
        Ok(changeset)
    }
}

// SAFETY: a session is only used with the connection it was started on, which moves between
// threads (a transaction's statements run on blocking threads one at a time) but is never used
// by two at once; the bundled SQLite is built thread-safe, so its objects may change threads.
// `Session` is not `Sync`: `&Session` is never shared.
unsafe impl Send for Session {}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: created by `sqlite3session_create`, deleted once.
        unsafe { ffi::sqlite3session_delete(self.raw) };
    }
}

unsafe extern "C" fn not_the_position_table(_context: *mut c_void, table: *const c_char) -> c_int {
    // SAFETY: SQLite passes a NUL-terminated table name.
    let table = unsafe { CStr::from_ptr(table) };
    c_int::from(table.to_bytes() != POSITION_TABLE.as_bytes())
}

/// Plays `changeset` into `db` inside the caller's transaction. Foreign-key actions are not
/// taken (their effects are in the changeset already). A conflict (a row that is not as the
/// writer found it) means this copy has diverged: the apply is aborted and fails.
pub fn apply(db: &Connection, changeset: &[u8]) -> rusqlite::Result<()> {
    let length = c_int::try_from(changeset.len())
        .map_err(|_| rusqlite::Error::ToSqlConversionFailure("a changeset over 2 GiB".into()))?;
    let flags = ffi::SQLITE_CHANGESETAPPLY_NOSAVEPOINT | ffi::SQLITE_CHANGESETAPPLY_FKNOACTION;
    // SAFETY: `db` is live; SQLite only reads the changeset buffer, whose length is given.
    check(db, unsafe {
        ffi::sqlite3changeset_apply_v2(
            db.handle(),
            length,
            changeset.as_ptr().cast_mut().cast(),
            None,
            Some(on_conflict),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            flags,
        )
    })
}

/// A constraint the writer's foreign keys let through is accepted; any other conflict aborts.
unsafe extern "C" fn on_conflict(
    _context: *mut c_void,
    conflict: c_int,
    _change: *mut ffi::sqlite3_changeset_iter,
) -> c_int {
    if conflict == ffi::SQLITE_CHANGESET_FOREIGN_KEY {
        ffi::SQLITE_CHANGESET_OMIT
    } else {
        ffi::SQLITE_CHANGESET_ABORT
    }
}

/// SQLite's result `code` as a rusqlite error with the connection's message.
fn check(db: &Connection, code: c_int) -> rusqlite::Result<()> {
    if code == ffi::SQLITE_OK {
        return Ok(());
    }
    // SAFETY: `db` is live; the message is copied before the next call on it.
    let message = unsafe {
        let text = ffi::sqlite3_errmsg(db.handle());
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    };
    Err(rusqlite::Error::SqliteFailure(
        ffi::Error::new(code),
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE visits (path TEXT NOT NULL);
             CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, seen TEXT);
             CREATE TABLE _ledge_replication (id INTEGER PRIMARY KEY, seq INTEGER);",
        )
        .unwrap();
        db
    }

    fn contents(db: &Connection) -> Vec<String> {
        let mut rows = Vec::new();
        for query in [
            "SELECT rowid || ':' || path FROM visits ORDER BY rowid",
            "SELECT id || ':' || name || ':' || ifnull(seen, '') FROM users ORDER BY id",
        ] {
            let mut statement = db.prepare(query).unwrap();
            let found = statement
                .query_map([], |row| row.get::<_, String>(0))
                .unwrap();
            rows.extend(found.map(Result::unwrap));
        }
        rows
    }

    #[test]
    fn a_changeset_carries_values_and_rowid_tables_and_replays_them() {
        assert!(available());
        let (writer, replica) = (database(), database());
        let tx = writer.unchecked_transaction().unwrap();
        let session = Session::start(&writer).unwrap();
        writer
            .execute_batch(
                "INSERT INTO visits VALUES ('/a'), ('/b');
                 INSERT INTO users (name, seen) VALUES ('ada', datetime('now') || random());
                 UPDATE users SET name = 'ada l' WHERE id = 1;
                 INSERT INTO _ledge_replication VALUES (1, 7);",
            )
            .unwrap();
        let changeset = session.changeset(&writer).unwrap();
        drop(session);
        tx.commit().unwrap();

        let tx = replica.unchecked_transaction().unwrap();
        apply(&replica, &changeset).unwrap();
        tx.commit().unwrap();
        assert_eq!(contents(&replica), contents(&writer));
        assert_eq!(contents(&replica).len(), 3);
        let position: i64 = replica
            .query_row("SELECT count(*) FROM _ledge_replication", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(position, 0, "the position table is never recorded");
    }

    #[test]
    fn nothing_changed_is_an_empty_changeset_and_a_diverged_row_aborts() {
        let (writer, replica) = (database(), database());
        let session = Session::start(&writer).unwrap();
        writer.execute("SELECT 1", []).ok();
        assert!(session.changeset(&writer).unwrap().is_empty());
        writer
            .execute("INSERT INTO users (id, name) VALUES (1, 'ada')", [])
            .unwrap();
        let changeset = session.changeset(&writer).unwrap();
        replica
            .execute("INSERT INTO users (id, name) VALUES (1, 'grace')", [])
            .unwrap();
        let tx = replica.unchecked_transaction().unwrap();
        assert!(apply(&replica, &changeset).is_err());
        drop(tx);
        assert_eq!(contents(&replica), ["1:grace:"]);
    }
}
