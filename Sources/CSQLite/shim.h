#ifndef REENCRYPTD_CSQLITE_SHIM_H
#define REENCRYPTD_CSQLITE_SHIM_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast of -1 to a function pointer: Swift cannot import that macro.
static inline sqlite3_destructor_type reencryptd_sqlite_transient(void) { return SQLITE_TRANSIENT; }
// SQLITE_STATIC likewise (a null destructor): the caller keeps the buffer alive until the step.
static inline sqlite3_destructor_type reencryptd_sqlite_static(void) { return SQLITE_STATIC; }
// sqlite3_db_config is variadic; this is the one option we set (defensive mode forbids writes to the schema).
static inline int reencryptd_sqlite_enable_defensive(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
}
// sqlite3_config is variadic too. Memory statistics off: with them on (the default), every allocation and free inside
// SQLite takes a process-wide mutex and measures the block; this build has no lookaside, so a statement step makes
// several. Must run before the first connection opens (it returns SQLITE_MISUSE after).
// https://www.sqlite.org/c3ref/c_config_covering_index_scan.html#sqliteconfigmemstatus
static inline int reencryptd_sqlite_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
#endif
