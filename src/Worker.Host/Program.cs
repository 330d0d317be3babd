using Worker.Host;

return await WorkerCommands.Create().Parse(args).InvokeAsync().ConfigureAwait(false);
