// LocalLauncher starts DynamoDB Local listening on one address only.
//
// DynamoDB Local's own entry point (ServerRunner, used by
// `java -jar DynamoDBLocal.jar`) has no bind option: its Jetty server listens
// on every interface, so a test run would expose an unauthenticated database
// to the network. This launcher builds the same request and server handlers
// ServerRunner builds for `-inMemory` (one in-memory database per access key
// id, no -sharedDb, no telemetry) and serves them from a Jetty connector bound
// to the given host, 127.0.0.1 unless told otherwise.
//
// Usage:
//
//	java -Djava.library.path=DIR/DynamoDBLocal_lib \
//	     -cp DIR/launcher:DIR/DynamoDBLocal.jar LocalLauncher [-host H] [-port P]
//
// With -port 0 (the default) the kernel picks a free port. Once the server
// accepts connections, the launcher prints one line to stdout:
//
//	LocalLauncher listening 127.0.0.1:PORT
//
// It exits when its standard input reaches end of file, so a DynamoDB Local
// started by a test dies with the test process even when that process is
// killed. Pass -no-stdin-watch to run it from a shell without a terminal on
// stdin.

import com.amazonaws.services.dynamodbv2.local.server.LocalDynamoDBRequestHandler;
import com.amazonaws.services.dynamodbv2.local.server.LocalDynamoDBServerHandler;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ContextHandler;
import org.eclipse.jetty.server.handler.ContextHandlerCollection;

public final class LocalLauncher {
    private LocalLauncher() {}

    public static void main(String[] args) throws Exception {
        String host = "127.0.0.1";
        int port = 0;
        boolean watchStdin = true;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "-host":
                    host = value(args, ++i);
                    break;
                case "-port":
                    port = Integer.parseInt(value(args, ++i));
                    break;
                case "-no-stdin-watch":
                    watchStdin = false;
                    break;
                default:
                    System.err.println("LocalLauncher: unknown argument " + args[i]
                            + " (usage: LocalLauncher [-host H] [-port P] [-no-stdin-watch])");
                    System.exit(2);
            }
        }

        // The same arguments ServerRunner.createServer passes for
        // `-inMemory`: in memory, no dbPath, no sharedDb (one database per
        // access key id and region), no delayed transient statuses.
        LocalDynamoDBRequestHandler requests =
                new LocalDynamoDBRequestHandler(0, true, null, false, false);
        LocalDynamoDBServerHandler handler = new LocalDynamoDBServerHandler(requests, null);

        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost(host);
        connector.setPort(port);
        server.addConnector(connector);
        // DynamoDBProxyServer.setUpHandler wraps the handler the same way.
        ContextHandler context = new ContextHandler();
        context.setHandler(handler);
        ContextHandlerCollection contexts = new ContextHandlerCollection();
        contexts.addHandler(context);
        server.setHandler(contexts);
        server.setStopAtShutdown(true);
        server.start();

        System.out.println("LocalLauncher listening " + host + ":" + connector.getLocalPort());
        System.out.flush();

        if (watchStdin) {
            Thread watcher = new Thread(() -> {
                try {
                    byte[] buf = new byte[256];
                    while (System.in.read(buf) >= 0) {
                        // Discard: stdin only signals that the parent is alive.
                    }
                } catch (Exception e) {
                    // Treat a broken stdin like end of file.
                }
                System.err.println("LocalLauncher: stdin closed, stopping");
                Runtime.getRuntime().halt(0);
            }, "stdin-watch");
            watcher.setDaemon(true);
            watcher.start();
        }
        server.join();
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            System.err.println("LocalLauncher: " + args[i - 1] + " needs a value");
            System.exit(2);
        }
        return args[i];
    }
}
