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
#endif
