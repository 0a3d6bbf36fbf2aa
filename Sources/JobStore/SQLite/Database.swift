import CSQLite
import Domain
import Foundation

/// A failed SQLite call: the result code, SQLite's message and the statement, so a person can act on it.
/// Modelled on GRDB's `DatabaseError`.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public let sql: String?
    public let path: String

    public var description: String {
        var text = "job store \(path): \(message) (SQLite code \(code))"
        if let sql { text += " while running: \(sql.split(separator: "\n").joined(separator: " "))" }
        if code == SQLITE_BUSY || code == SQLITE_LOCKED { text += "; another process holds the database for too long" }
        if code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM {
            text += "; check that the file and its folder are writable"
        }
        return text
    }
}

/// A command that only works on existing jobs was pointed at a job store that does not exist: most likely a mistyped
/// `--db` or `[store] path`. Opening would have created an empty store there and reported "no jobs".
public struct StoreNotFound: InputError, Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public var description: String {
        "there is no job store at \(path) (`reencryptd submit` creates one; check --db, or [store] path in the configuration)"
    }
}

/// One SQLite connection. Not thread-safe by itself: the owner (`SQLiteJobStore`) serialises access with a lock.
final class Database {
    let handle: OpaquePointer
    let path: String

    /// Process-wide settings, made once before the first connection opens.
    private static let configured: Void = { _ = reencryptd_sqlite_disable_memstatus() }()

    /// `create`: make the file if it is missing; otherwise a missing file is `StoreNotFound`.
    init(path: String, create: Bool = true) throws {
        Self.configured
        var db: OpaquePointer?
        // NOMUTEX: the store serialises calls itself, so SQLite's own mutex would only add cost.
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close_v2(db) }
            if !create, rc & 0xFF == SQLITE_CANTOPEN, !FileManager.default.fileExists(atPath: path) {
                throw StoreNotFound(path: path)
            }
            throw StoreError(code: rc, message: message, sql: nil, path: path)
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        _ = reencryptd_sqlite_enable_defensive(db)
    }

    deinit {
        statements.removeAll()  // finalized first, so the connection closes now rather than as a zombie
        sqlite3_close_v2(handle)
    }

    func error(_ rc: Int32, sql: String?) -> StoreError {
        StoreError(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql, path: path)
    }

    /// Runs one or more statements that return no rows we need.
    func execute(_ sql: String) throws {
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errmsg)
            throw StoreError(code: rc, message: message, sql: sql, path: path)
        }
    }

    /// Prepared statements by SQL text. Preparing parses and plans the SQL: on the engine's paths (a claim, a batch
    /// of outcomes, every transaction's BEGIN and COMMIT) that cost more than running the statement.
    private var statements: [String: Statement] = [:]

    /// A prepared statement for `sql`, reused when one is idle (every use resets it: `run`, `forEachRow`).
    func prepare(_ sql: String) throws -> Statement {
        if let cached = statements[sql], !cached.isBusy { return cached }
        let fresh = try prepareUncached(sql)
        if statements[sql] == nil { statements[sql] = fresh }
        return fresh
    }

    private func prepareUncached(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql: sql) }
        return Statement(stmt, database: self, sql: sql)
    }

    var changes: Int { Int(sqlite3_changes64(handle)) }
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs `body` in a write transaction taken up front (BEGIN IMMEDIATE, so a busy database fails at the start,
    /// not at the first write); rolls back on any error, so nothing is half-written.
    func writeTransaction<T>(_ body: () throws -> T) throws -> T {
        try prepare("BEGIN IMMEDIATE").run()
        do {
            let value = try body()
            try prepare("COMMIT").run()
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    func readTransaction<T>(_ body: () throws -> T) throws -> T {
        try prepare("BEGIN").run()
        defer { try? prepare("COMMIT").run() }
        return try body()
    }
}

/// A non-null pointer for empty strings (a null text pointer would bind NULL, not '').
private nonisolated(unsafe) let emptyCString: UnsafePointer<CChar> = {
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    p.pointee = 0
    return UnsafePointer(p)
}()

/// A prepared statement. Positional parameters are 1-based as in SQLite.
final class Statement {
    let handle: OpaquePointer
    unowned let database: Database
    let sql: String

    init(_ handle: OpaquePointer, database: Database, sql: String) {
        self.handle = handle
        self.database = database
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Stepped and not yet reset (in use by a caller iterating it).
    var isBusy: Bool { sqlite3_stmt_busy(handle) != 0 }

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    func bind(_ index: Int32, _ value: Int) { sqlite3_bind_int64(handle, index, Int64(value)) }
    func bind(_ index: Int32, _ value: Double) { sqlite3_bind_double(handle, index, value) }
    func bind(_ index: Int32, _ value: String) {
        var value = value
        value.withUTF8 { buf in
            // TRANSIENT: SQLite copies the bytes, so the Swift buffer may go away after this call.
            buf.withMemoryRebound(to: CChar.self) { chars in
                _ = sqlite3_bind_text(handle, index, chars.baseAddress ?? emptyCString, Int32(chars.count),
                                      reencryptd_sqlite_transient())
            }
        }
    }
    func bind(_ index: Int32, _ value: String?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }
    func bind(_ index: Int32, _ value: Int?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }
    func bind(_ index: Int32, _ value: Double?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }

    /// Steps once: true when a row is available.
    @discardableResult
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw database.error(rc, sql: sql)
    }

    /// Resets for the next execution and clears the bindings.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Executes a statement that returns no rows, then resets it.
    func run() throws {
        defer { reset() }
        try step()
    }

    /// Iterates the rows, resetting afterwards.
    func forEachRow(_ body: (Statement) throws -> Void) throws {
        defer { reset() }
        while try step() { try body(self) }
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }
    func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    func string(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }
    func optionalString(_ column: Int32) -> String? { isNull(column) ? nil : string(column) }
    func optionalInt(_ column: Int32) -> Int? { isNull(column) ? nil : int(column) }
    func optionalDouble(_ column: Int32) -> Double? { isNull(column) ? nil : double(column) }
}
