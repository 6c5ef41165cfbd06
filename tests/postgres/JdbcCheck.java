// Drives CohortDB's PostgreSQL wire protocol with pgjdbc (run by
// tests/postgres.rs with `java -cp postgresql.jar JdbcCheck.java`): plain
// statements, a PreparedStatement run seven times (pgjdbc switches to a
// server-prepared statement after five), int8 and text[] results,
// DatabaseMetaData.getTables, an error's SQLSTATE and the connection usable
// after it. Connection settings come from PGHOST, PGPORT, PGUSER,
// PGPASSWORD. Prints one line per check; exits non-zero on the first failure.
import java.sql.*;
import java.util.*;

public class JdbcCheck {
    static void check(String name, Object got, Object expected) {
        if (!Objects.equals(got, expected)) {
            System.out.println("FAIL " + name + ": got " + got + ", expected " + expected);
            System.exit(1);
        }
        System.out.println("ok " + name);
    }
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/cohort";
        try (Connection c = DriverManager.getConnection(url, System.getenv("PGUSER"), System.getenv("PGPASSWORD"))) {
            try (Statement s = c.createStatement()) {
                s.execute("DROP TABLE IF EXISTS jdbc_people");
                s.execute("CREATE TABLE jdbc_people (id TEXT PRIMARY KEY, country TEXT, age INT, tags SET<TEXT>)");
                s.execute("INSERT INTO jdbc_people (id, country, age, tags) VALUES ('u1', 'NL', 34, ['tea']), ('u2', 'FR', 41, ['baking', 'tea']), ('u3', 'NL', 29, [])");
            }
            for (int run = 0; run < 7; run++) { // pgjdbc switches to a server-prepared statement after 5 runs
                try (PreparedStatement p = c.prepareStatement("SELECT COUNT(*) FROM jdbc_people WHERE country = ? AND age >= ?")) {
                    p.setString(1, "NL");
                    p.setInt(2, 30);
                    try (ResultSet r = p.executeQuery()) {
                        r.next();
                        check("prepared count, run " + run, r.getLong(1), 1L);
                    }
                }
            }
            try (PreparedStatement p = c.prepareStatement("SELECT id, age, tags FROM jdbc_people WHERE age >= ?")) {
                p.setInt(1, 40);
                try (ResultSet r = p.executeQuery()) {
                    r.next();
                    check("row id", r.getString(1), "u2");
                    check("row age", r.getLong(2), 41L);
                    check("row tags", Arrays.asList((String[]) r.getArray(3).getArray()), Arrays.asList("baking", "tea"));
                    check("one row", r.next(), false);
                }
            }
            try (ResultSet r = c.getMetaData().getTables(null, null, "%", new String[] {"TABLE"})) {
                List<String> names = new ArrayList<>();
                while (r.next()) names.add(r.getString("TABLE_NAME"));
                check("getTables lists jdbc_people", names.contains("jdbc_people"), true);
            }
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT COUNT(*) FROM jdbc_people WHER age > 1");
                check("bad statement fails", true, false);
            } catch (SQLException e) {
                check("syntax error SQLSTATE", e.getSQLState(), "42601");
            }
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT COUNT(*) FROM jdbc_people")) {
                r.next();
                check("usable after the error", r.getLong(1), 3L);
            }
        }
        System.out.println("all JDBC checks passed");
    }
}
