-- Argo CD health check for every dbtether kind (dbtether.io/* and PostgresDatabase).
-- Healthy: the Ready condition is True for the current generation (a Backup or Restore that is
-- Completed, a DBCluster that is Connected). Degraded: phase Failed, a refusal the user must
-- fix. Progressing: everything else (not reconciled yet, waiting for a dependency, running).
local hs = { status = "Progressing", message = "Waiting for dbtether" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.message = "Waiting for dbtether to reconcile generation " .. generation
  return hs
end
local ready = nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end
local phase = obj.status.phase
local message = obj.status.message
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  message = ready.reason .. ": " .. ready.message
end
if (ready ~= nil and ready.status == "True") or phase == "Completed" or phase == "Connected" then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
end
if message ~= nil then
  hs.message = message
elseif phase ~= nil then
  hs.message = phase
end
return hs
