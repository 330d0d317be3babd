using Gong.Simulator;

await GongSimulatorApp.RunAsync(args).ConfigureAwait(false);
