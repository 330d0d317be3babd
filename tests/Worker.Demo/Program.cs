using System.CommandLine;
using Worker.Demo;

var requests = new Option<int>("--requests") { Description = "Requests to publish.", DefaultValueFactory = _ => 2000 };
var pairs = new Option<int>("--pairs") { Description = "Distinct (flow, owner) pairs.", DefaultValueFactory = _ => 40 };
var seed = new Option<int>("--seed") { Description = "Random seed of the workload.", DefaultValueFactory = _ => 20261129 };
var timeout = new Option<int>("--timeout") { Description = "Seconds to wait for the drain before declaring work stuck.", DefaultValueFactory = _ => 110 };
var postgres = new Option<string>("--postgres") { Description = "Npgsql connection string of the worker's database.", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ConnectionStrings__Postgres") ?? "Host=127.0.0.1;Database=worker;Username=worker;Password=worker" };
var rabbit = new Option<string>("--rabbitmq") { Description = "AMQP URI of the worker's vhost.", DefaultValueFactory = _ => "amqp://worker:worker@127.0.0.1:5672/worker" };
var simulator = new Option<string>("--simulator") { Description = "Base URL of the Gong simulator (seeding and call log).", DefaultValueFactory = _ => "http://127.0.0.1:5080" };
var limit = new Option<double>("--calls-per-second") { Description = "The Gong rate limit the worker and simulator run with (for the summary).", DefaultValueFactory = _ => 3 };

var root = new RootCommand("Publishes a realistic workload to the worker through RabbitMQ, follows the drain and prints a summary. Exit code 1 if anything is lost or stuck.")
{
    requests, pairs, seed, timeout, postgres, rabbit, simulator, limit,
};
root.SetAction((parse, ct) => new DemoRunner(new DemoSettings(
    parse.GetValue(requests),
    parse.GetValue(pairs),
    parse.GetValue(seed),
    TimeSpan.FromSeconds(parse.GetValue(timeout)),
    parse.GetValue(postgres)!,
    new Uri(parse.GetValue(rabbit)!),
    new Uri(parse.GetValue(simulator)!),
    parse.GetValue(limit))).RunAsync(Console.Out, ct));
return await root.Parse(args).InvokeAsync();
