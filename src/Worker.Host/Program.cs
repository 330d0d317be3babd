using Worker.Host;

return await WorkerCommands.InvokeAsync(args).ConfigureAwait(false);
